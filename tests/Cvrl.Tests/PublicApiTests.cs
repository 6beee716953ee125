using System.Reflection;
using System.Text;

namespace Cvrl.Tests;

/// <summary>
/// The public surface of the libraries, listed one member per line and compared with the checked-in listings in
/// tests/api/, so that every change of the surface shows up as a diff in review. After an intended change, run the tests
/// with CVRL_UPDATE_API=1 to rewrite the listings, and commit them with the change.
/// </summary>
public sealed class PublicApiTests
{
    public static TheoryData<string> Assemblies => new() { "Cvrl", "Cvrl.Augment", "Cvrl.Models", "Cvrl.Video", "Cvrl.Onnx" };

    [Theory]
    [MemberData(nameof(Assemblies))]
    public void PublicSurface_MatchesTheCheckedInListing(string assemblyName)
    {
        var assembly = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == assemblyName) ?? Assembly.Load(assemblyName);
        string actual = Describe(assembly);
        string file = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../api", assemblyName + ".txt"));
        if (Environment.GetEnvironmentVariable("CVRL_UPDATE_API") == "1")
        {
            File.WriteAllText(file, actual);
        }

        Assert.True(File.Exists(file), $"{file} is missing; run the tests with CVRL_UPDATE_API=1 to create it");
        string expected = File.ReadAllText(file).ReplaceLineEndings("\n");
        var expectedLines = expected.Split('\n').ToHashSet(StringComparer.Ordinal);
        var actualLines = actual.Split('\n').ToHashSet(StringComparer.Ordinal);
        var added = actualLines.Except(expectedLines).Take(15).ToList();
        var removed = expectedLines.Except(actualLines).Take(15).ToList();
        Assert.True(
            added.Count == 0 && removed.Count == 0,
            $"The public surface of {assemblyName} changed (CVRL_UPDATE_API=1 rewrites tests/api/{assemblyName}.txt):\n+ {string.Join("\n+ ", added)}\n- {string.Join("\n- ", removed)}");
    }

    private static string Describe(Assembly assembly)
    {
        var sb = new StringBuilder();
        foreach (var type in assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            sb.Append(TypeKind(type)).Append(' ').Append(Name(type));
            var bases = new List<string>();
            if (type.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) && !type.IsEnum)
            {
                bases.Add(Name(b));
            }

            bases.AddRange(type.GetInterfaces().Where(i => i.IsPublic || i.IsNestedPublic).Select(Name).Order(StringComparer.Ordinal));
            if (bases.Count > 0)
            {
                sb.Append(" : ").Append(string.Join(", ", bases));
            }

            sb.Append('\n');
            var members = new List<string>();
            const BindingFlags Flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            if (type.IsEnum)
            {
                members.AddRange(Enum.GetNames(type).Select(n => $"value {n}"));
            }
            else
            {
                members.AddRange(type.GetConstructors(Flags).Select(c => $"ctor({Parameters(c)})"));
                members.AddRange(type.GetMethods(Flags).Where(m => !m.IsSpecialName && m.Name != "<Clone>$")
                    .Select(m => $"{(m.IsStatic ? "static " : string.Empty)}{Name(m.ReturnType)} {m.Name}{Generic(m)}({Parameters(m)})"));
                members.AddRange(type.GetProperties(Flags).Select(p => $"{(p.GetMethod?.IsStatic == true ? "static " : string.Empty)}property {Name(p.PropertyType)} {p.Name}{(p.SetMethod?.IsPublic == true ? (p.SetMethod.ReturnParameter.GetRequiredCustomModifiers().Any(m => m.Name == "IsExternalInit") ? " { get; init; }" : " { get; set; }") : " { get; }")}"));
                members.AddRange(type.GetFields(Flags).Where(f => !f.IsSpecialName).Select(f => $"{(f.IsLiteral ? "const" : f.IsStatic ? "static field" : "field")} {Name(f.FieldType)} {f.Name}"));
                members.AddRange(type.GetEvents(Flags).Select(e => $"event {Name(e.EventHandlerType!)} {e.Name}"));
            }

            foreach (var m in members.Order(StringComparer.Ordinal))
            {
                sb.Append("  ").Append(m).Append('\n');
            }
        }

        return sb.ToString();
    }

    private static string TypeKind(Type t) =>
        t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? (IsRecord(t) ? "record struct" : "struct")
        : t.IsAbstract && t.IsSealed ? "static class" : IsRecord(t) ? (t.IsSealed ? "sealed record" : "record")
        : t.IsSealed ? "sealed class" : t.IsAbstract ? "abstract class" : "class";

    private static bool IsRecord(Type t) => t.GetMethod("<Clone>$") is not null || (t.IsValueType && t.GetMethod("PrintMembers", BindingFlags.NonPublic | BindingFlags.Instance) is not null);

    private static string Generic(MethodInfo m) => m.IsGenericMethodDefinition ? $"<{string.Join(", ", m.GetGenericArguments().Select(a => a.Name))}>" : string.Empty;

    private static string Parameters(MethodBase m) =>
        string.Join(", ", m.GetParameters().Select(p => $"{Name(p.ParameterType)} {p.Name}{(p.HasDefaultValue ? " = " + (Convert.ToString(p.DefaultValue, System.Globalization.CultureInfo.InvariantCulture) ?? "null") : string.Empty)}"));

    private static string Name(Type t)
    {
        if (t.IsByRef)
        {
            return "ref " + Name(t.GetElementType()!);
        }

        if (t.IsArray)
        {
            return Name(t.GetElementType()!) + "[]";
        }

        if (Nullable.GetUnderlyingType(t) is { } underlying)
        {
            return Name(underlying) + "?";
        }

        string name = t.IsNested ? Name(t.DeclaringType!) + "." + t.Name : (t.Namespace is null ? t.Name : t.Namespace + "." + t.Name);
        if (t.IsGenericType)
        {
            name = name[..name.IndexOf('`', StringComparison.Ordinal)] + "<" + string.Join(", ", t.GetGenericArguments().Select(a => a.IsGenericParameter ? a.Name : Name(a))) + ">";
        }

        return name;
    }
}
