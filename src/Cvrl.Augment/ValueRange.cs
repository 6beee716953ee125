namespace Cvrl.Augment;

/// <summary>A closed interval [<paramref name="Min"/>, <paramref name="Max"/>] of an option (serialises to JSON as its two ends).</summary>
/// <param name="Min">The lower end.</param>
/// <param name="Max">The upper end.</param>
public readonly record struct ValueRange(double Min, double Max)
{
    /// <summary>The interval as a tuple, as the transforms take it.</summary>
    public (double Min, double Max) ToTuple() => (Min, Max);

    /// <inheritdoc />
    public override string ToString() => $"[{Min:G4}, {Max:G4}]";
}
