namespace Cvrl.Testing;

/// <summary>Damages files the way disks and copies do, for integrity tests.</summary>
public static class FileDamage
{
    /// <summary>Flips one bit in the middle of a file (inside a tensor's bytes for a checkpoint of a few hundred KB or more).</summary>
    public static void FlipBit(string path)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(path, bytes);
    }
}
