using System.Collections;

namespace Cvrl.Models.Weights;

/// <summary>
/// A Python tuple read from a pickle: an immutable list whose equality is element-wise (tuples can be dictionary keys).
/// </summary>
public sealed class PickleTuple : IReadOnlyList<object?>, IEquatable<PickleTuple>
{
    private readonly object?[] _items;

    internal PickleTuple(object?[] items)
    {
        _items = items;
        int inner = 0;
        foreach (var item in items)
        {
            if (item is PickleTuple t && t.Depth > inner)
            {
                inner = t.Depth;
            }
        }

        Depth = inner + 1;
    }

    /// <summary>The empty tuple.</summary>
    public static PickleTuple Empty { get; } = new([]);

    /// <inheritdoc />
    public int Count => _items.Length;

    /// <inheritdoc />
    public object? this[int index] => _items[index];

    /// <summary>
    /// How deep tuples nest in this one (1 for a tuple that holds no tuple): equality, hashing and text recurse this deep,
    /// so the reader refuses tuples nested beyond a limit.
    /// </summary>
    internal int Depth { get; }

    /// <summary>The items, for the reader to replace placeholders in place.</summary>
    internal object?[] Items => _items;

    /// <inheritdoc />
    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    /// <inheritdoc />
    public bool Equals(PickleTuple? other) =>
        other is not null && other._items.Length == _items.Length && _items.Zip(other._items).All(p => PickleKeyComparer.Instance.Equals(p.First ?? PickleNone.Value, p.Second ?? PickleNone.Value));

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is PickleTuple t && Equals(t);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var item in _items)
        {
            hash.Add(PickleKeyComparer.Instance.GetHashCode(item ?? PickleNone.Value));
        }

        return hash.ToHashCode();
    }

    /// <summary>"(a, b)".</summary>
    public override string ToString() => "(" + string.Join(", ", _items.Select(i => i?.ToString() ?? "None")) + ")";
}

/// <summary>Python's <c>None</c> where .NET cannot hold a null (as a dictionary key).</summary>
public sealed class PickleNone
{
    private PickleNone()
    {
    }

    /// <summary>The one instance.</summary>
    public static PickleNone Value { get; } = new();

    /// <summary>"None".</summary>
    public override string ToString() => "None";
}

/// <summary>
/// An object of a Python class that Cvrl recognises in checkpoints but does not interpret (a configuration node, a NumPy
/// array or scalar type, a device): its class name and what was pickled for it. Reading it ran no code.
/// </summary>
public sealed class PickledObject
{
    internal PickledObject(string typeName, IReadOnlyList<object?> arguments)
    {
        TypeName = typeName;
        Arguments = arguments;
    }

    /// <summary>The class, "module.name" (for example <c>fvcore.common.config.CfgNode</c>).</summary>
    public string TypeName { get; }

    /// <summary>The arguments pickled for its construction.</summary>
    public IReadOnlyList<object?> Arguments { get; }

    /// <summary>The state pickled for it (usually its attributes), or null.</summary>
    public object? State { get; internal set; }

    /// <summary>Entries pickled into it, when it is a dictionary subclass (a config node).</summary>
    public Dictionary<object, object?> Entries { get; } = new(PickleKeyComparer.Instance);

    /// <summary>Items pickled into it, when it is a list subclass.</summary>
    public List<object?> Items { get; } = [];

    /// <summary>"&lt;fvcore.common.config.CfgNode&gt;".</summary>
    public override string ToString() => $"<{TypeName}>";
}

/// <summary>Dictionary-key equality for pickled values: strings, integers, floats, tuples and None.</summary>
internal sealed class PickleKeyComparer : IEqualityComparer<object>
{
    public static PickleKeyComparer Instance { get; } = new();

    public new bool Equals(object? x, object? y) => (x, y) switch
    {
        (null, null) => true,
        (null, _) or (_, null) => false,
        (long a, long b) => a == b,
        (long a, double b) => a == b,
        (double a, long b) => a == b,
        (bool a, long b) => (a ? 1 : 0) == b,
        (long a, bool b) => a == (b ? 1 : 0),
        _ => x.Equals(y),
    };

    public int GetHashCode(object obj) => obj switch
    {
        long l => l.GetHashCode(),
        bool b => (b ? 1L : 0L).GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
        _ => obj.GetHashCode(),
    };
}
