namespace Cvrl.Video;

/// <summary>A data set or a list of videos cannot be used: files are missing, the list is malformed or empty, or none of its videos decodes. The message gives the count and the first few names.</summary>
public sealed class DatasetException : IOException
{
    /// <summary>Creates the exception.</summary>
    public DatasetException(string message, IReadOnlyList<string>? missing = null)
        : base(message)
    {
        Missing = missing ?? [];
    }

    /// <summary>Creates the exception (tooling).</summary>
    public DatasetException()
        : this("The data set is invalid.")
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public DatasetException(string message, Exception inner)
        : base(message, inner)
    {
        Missing = [];
    }

    /// <summary>The missing files, when that is the problem.</summary>
    public IReadOnlyList<string> Missing { get; }
}
