using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

/// <summary>
/// Writes files in torch.save's legacy (pre-1.6) format from C#, for tests that need checkpoints with other
/// configurations than the fixtures: nested dictionaries with text keys, text, integers, and float32 and int64 tensors.
/// </summary>
internal static class LegacyTorchSave
{
    public static void Write(string path, IReadOnlyDictionary<string, object> root)
    {
        var storages = new List<(string Key, Tensor Tensor)>();
        using var file = File.Create(path);
        using var w = new BinaryWriter(file);
        Pickle(w, p => Int(p, System.Numerics.BigInteger.Parse("119547037146038801333356")));
        Pickle(w, p => Int(p, 1001));
        Pickle(w, p => p.Write((byte)'}'));
        Pickle(w, p => Value(p, root, storages));
        Pickle(w, p =>
        {
            p.Write((byte)']');
            p.Write((byte)'(');
            foreach (var (key, _) in storages)
            {
                Text(p, key);
            }

            p.Write((byte)'e');
        });
        foreach (var (_, tensor) in storages)
        {
            using var host = tensor.to(tensor.dtype == ScalarType.Int64 ? ScalarType.Int64 : ScalarType.Float32).contiguous();
            w.Write(host.numel());
            w.Write(host.bytes);
        }
    }

    private static void Pickle(BinaryWriter w, Action<BinaryWriter> body)
    {
        w.Write((byte)0x80);
        w.Write((byte)2);
        body(w);
        w.Write((byte)'.');
    }

    private static void Value(BinaryWriter p, object value, List<(string, Tensor)> storages)
    {
        switch (value)
        {
            case string s:
                Text(p, s);
                break;
            case int or long:
                Int(p, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
            case IReadOnlyDictionary<string, object> dict:
                p.Write((byte)'}');
                p.Write((byte)'(');
                foreach (var (k, v) in dict)
                {
                    Text(p, k);
                    Value(p, v, storages);
                }

                p.Write((byte)'u');
                break;
            case IReadOnlyDictionary<string, Tensor> tensors:
                Value(p, tensors.ToDictionary(kv => kv.Key, kv => (object)kv.Value), storages);
                break;
            case Tensor t:
                string key = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                storages.Add((key, t));
                Global(p, "torch._utils", "_rebuild_tensor_v2");
                p.Write((byte)'(');
                p.Write((byte)'(');
                Text(p, "storage");
                Global(p, "torch", t.dtype == ScalarType.Int64 ? "LongStorage" : "FloatStorage");
                Text(p, key);
                Text(p, "cpu");
                Int(p, t.numel());
                p.Write((byte)'N');
                p.Write((byte)'t');
                p.Write((byte)'Q');
                Int(p, 0);
                Ints(p, t.shape);
                long[] strides = new long[t.shape.Length];
                for (int d = strides.Length - 1, s = 1; d >= 0; s *= (int)t.shape[d], d--)
                {
                    strides[d] = s;
                }

                Ints(p, strides);
                p.Write((byte)0x89);
                p.Write((byte)'}');
                p.Write((byte)'t');
                p.Write((byte)'R');
                break;
            default:
                throw new ArgumentException($"cannot write {value.GetType().Name}");
        }
    }

    private static void Ints(BinaryWriter p, long[] values)
    {
        p.Write((byte)'(');
        foreach (long v in values)
        {
            Int(p, v);
        }

        p.Write((byte)'t');
    }

    private static void Global(BinaryWriter p, string module, string name)
    {
        p.Write((byte)'c');
        p.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void Text(BinaryWriter p, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        p.Write((byte)'X');
        p.Write(bytes.Length);
        p.Write(bytes);
    }

    private static void Int(BinaryWriter p, System.Numerics.BigInteger value)
    {
        byte[] bytes = value.ToByteArray();
        p.Write((byte)0x8a);
        p.Write((byte)bytes.Length);
        p.Write(bytes);
    }
}
