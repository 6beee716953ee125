using System.Globalization;
using System.Text;

namespace Cvrl.Models.Weights;

/// <summary>
/// The values of a Python configuration file as mmcv and mmengine store it in a checkpoint (<c>meta.config</c>, the
/// file's text; <c>meta.cfg</c>, mmengine's pretty text with keys sorted): top-level assignments of literals,
/// <c>dict(k=v)</c> calls, dictionary, list and tuple displays, <c>**name</c> expansions and names of earlier
/// assignments, parsed into .NET values (dictionaries by key, lists, <see cref="long"/>, <see cref="double"/>,
/// <see cref="string"/>, <see cref="bool"/>, null). Nothing is run; an expression it does not read (arithmetic, a call
/// of another function) becomes <see cref="Unread"/>, and a statement it cannot follow is skipped to the next line that
/// starts a statement. Lookups therefore depend on the structure, never on the order in which keys were written.
/// </summary>
internal sealed class PythonConfig
{
    /// <summary>An expression the parser does not evaluate.</summary>
    public static readonly object Unread = new();

    private const int MaxNesting = 100;
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);
    private readonly string _text;
    private int _at;

    private PythonConfig(string text) => _text = text;

    /// <summary>The top-level assignments, by name.</summary>
    public IReadOnlyDictionary<string, object?> Variables => _variables;

    /// <summary>Parses configuration text.</summary>
    public static PythonConfig Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var config = new PythonConfig(text);
        config.ParseStatements();
        return config;
    }

    /// <summary>The value at a path of names from the top (<c>"model", "backbone", "type"</c>), or null.</summary>
    public object? Get(params string[] path)
    {
        object? node = _variables;
        foreach (string key in path)
        {
            if (node is not Dictionary<string, object?> dict || !dict.TryGetValue(key, out node))
            {
                return null;
            }
        }

        return node;
    }

    /// <summary>The steps of a data pipeline (a list of dictionaries with a <c>type</c>), or an empty list.</summary>
    public static IReadOnlyList<Dictionary<string, object?>> Steps(object? pipeline) =>
        pipeline is List<object?> list ? [.. list.OfType<Dictionary<string, object?>>()] : [];

    /// <summary>The first step of <paramref name="type"/> in a pipeline, or null.</summary>
    public static Dictionary<string, object?>? Step(object? pipeline, string type) =>
        Steps(pipeline).FirstOrDefault(s => s.TryGetValue("type", out var t) && t is string name && name == type);

    /// <summary>An integer value, or null.</summary>
    public static int? Int(object? value) => value is long l && l is >= int.MinValue and <= int.MaxValue ? (int)l : null;

    /// <summary>A list of numbers, or null.</summary>
    public static double[]? Numbers(object? value) =>
        value is List<object?> list && list.Count > 0 && list.All(v => v is long or double)
            ? [.. list.Select(v => v is long l ? l : (double)v!)]
            : null;

    private void ParseStatements()
    {
        while (true)
        {
            SkipBlank(newlines: true);
            if (_at >= _text.Length)
            {
                return;
            }

            int start = _at;
            try
            {
                string? name = Identifier();
                SkipBlank(newlines: false);
                if (name is not null && Peek() == '=' && PeekAt(1) != '=')
                {
                    _at++;
                    _variables[name] = Expression(0);
                    SkipBlank(newlines: false);
                    if (_at < _text.Length && Peek() is not ('\n' or '#' or ';'))
                    {
                        throw new FormatException("more after the value");
                    }

                    continue;
                }
            }
            catch (FormatException)
            {
                // Not an assignment this parser follows: go on at the next line that starts a statement.
            }

            _at = start;
            SkipStatement();
        }
    }

    /// <summary>Moves past the current statement: to the next line that begins at column 0 outside brackets and strings.</summary>
    private void SkipStatement()
    {
        int depth = 0;
        while (_at < _text.Length)
        {
            char c = _text[_at];
            if (c is '\'' or '"')
            {
                try
                {
                    StringLiteral();
                }
                catch (FormatException)
                {
                    _at++;
                }

                continue;
            }

            if (c == '#')
            {
                while (_at < _text.Length && _text[_at] != '\n')
                {
                    _at++;
                }

                continue;
            }

            depth += c is '(' or '[' or '{' ? 1 : c is ')' or ']' or '}' ? -1 : 0;
            _at++;
            if (c == '\n' && depth <= 0 && _at < _text.Length && !char.IsWhiteSpace(_text[_at]) && _text[_at] is not (')' or ']' or '}'))
            {
                return;
            }
        }
    }

    private object? Expression(int depth)
    {
        if (depth > MaxNesting)
        {
            throw new FormatException("nested too deep");
        }

        SkipBlank(newlines: true);
        char c = Peek();
        object? value;
        if (c is '\'' or '"')
        {
            var sb = new StringBuilder(StringLiteral());
            SkipBlank(newlines: true);
            while (Peek() is '\'' or '"')
            {
                sb.Append(StringLiteral()); // adjacent literals concatenate
                SkipBlank(newlines: true);
            }

            value = sb.ToString();
        }
        else if (c is '[' or '(')
        {
            _at++;
            var items = Sequence(c == '[' ? ']' : ')', depth);
            value = items;
        }
        else if (c == '{')
        {
            _at++;
            value = Dict('}', depth);
        }
        else if (char.IsDigit(c) || ((c is '-' or '+' or '.') && _at + 1 < _text.Length && (char.IsDigit(PeekAt(1)) || PeekAt(1) == '.')))
        {
            value = Number();
        }
        else if (Identifier() is { } name)
        {
            SkipBlank(newlines: false);
            if (name == "dict" && Peek() == '(')
            {
                _at++;
                value = Dict(')', depth);
            }
            else if (Peek() == '(')
            {
                _at++;
                Sequence(')', depth); // a call of something else: read past it
                value = Unread;
            }
            else
            {
                value = name switch
                {
                    "True" => true,
                    "False" => false,
                    "None" => null,
                    _ => _variables.TryGetValue(name, out var known) ? known : Unread,
                };
            }
        }
        else
        {
            throw new FormatException($"unexpected '{c}'");
        }

        SkipBlank(newlines: false);
        if (Peek() is '+' or '*' or '/' or '%' or '-' or '.' or '[' && !(Peek() == '*' && PeekAt(1) == '*'))
        {
            // Arithmetic, attribute access or indexing: read the rest of the operand chain as unevaluated.
            while (_at < _text.Length && Peek() is not (',' or ')' or ']' or '}' or '\n' or '#'))
            {
                if (Peek() is '(' or '[' or '{')
                {
                    char open = Peek();
                    _at++;
                    Sequence(open == '(' ? ')' : open == '[' ? ']' : '}', depth);
                }
                else if (Peek() is '\'' or '"')
                {
                    StringLiteral();
                }
                else
                {
                    _at++;
                }
            }

            return Unread;
        }

        return value;
    }

    private List<object?> Sequence(char close, int depth)
    {
        var items = new List<object?>();
        while (true)
        {
            SkipBlank(newlines: true);
            if (Peek() == close)
            {
                _at++;
                return items;
            }

            if (close == '}')
            {
                // A set or a dictionary read past (inside an unevaluated expression).
                Expression(depth + 1);
                SkipBlank(newlines: true);
                if (Peek() == ':')
                {
                    _at++;
                    Expression(depth + 1);
                }
            }
            else if (Peek() == '*' )
            {
                while (Peek() == '*')
                {
                    _at++;
                }

                items.Add(Unread);
                Expression(depth + 1);
            }
            else
            {
                int save = _at;
                string? keyword = Identifier();
                SkipBlank(newlines: false);
                if (keyword is not null && Peek() == '=' && PeekAt(1) != '=')
                {
                    _at++; // a keyword argument of a call read past
                }
                else
                {
                    _at = save;
                }

                items.Add(Expression(depth + 1));
            }

            SkipBlank(newlines: true);
            if (Peek() == ',')
            {
                _at++;
            }
            else if (Peek() != close)
            {
                throw new FormatException($"expected ',' or '{close}'");
            }
        }
    }

    /// <summary>The items of <c>dict(k=v, **d)</c> (<paramref name="close"/> is ')') or <c>{k: v, **d}</c> (close is '}').</summary>
    private Dictionary<string, object?> Dict(char close, int depth)
    {
        var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            SkipBlank(newlines: true);
            if (Peek() == close)
            {
                _at++;
                return dict;
            }

            if (Peek() == '*' && PeekAt(1) == '*')
            {
                _at += 2;
                Merge(dict, Expression(depth + 1));
            }
            else if (close == ')')
            {
                string key = Identifier() ?? throw new FormatException("expected a keyword");
                SkipBlank(newlines: true);
                Expect('=');
                dict[key] = Expression(depth + 1);
            }
            else
            {
                object? key = Expression(depth + 1);
                SkipBlank(newlines: true);
                Expect(':');
                object? value = Expression(depth + 1);
                if (key is string or long or bool)
                {
                    dict[Convert.ToString(key, CultureInfo.InvariantCulture)!] = value;
                }
            }

            SkipBlank(newlines: true);
            if (Peek() == ',')
            {
                _at++;
            }
            else if (Peek() != close)
            {
                throw new FormatException($"expected ',' or '{close}'");
            }
        }
    }

    private static void Merge(Dictionary<string, object?> into, object? from)
    {
        if (from is Dictionary<string, object?> other)
        {
            foreach (var (k, v) in other)
            {
                into[k] = v;
            }
        }
    }

    private object Number()
    {
        int start = _at;
        if (Peek() is '-' or '+')
        {
            _at++;
        }

        while (_at < _text.Length && (char.IsAsciiLetterOrDigit(_text[_at]) || _text[_at] is '.' or '_' || (_text[_at] is '-' or '+' && _text[_at - 1] is 'e' or 'E')))
        {
            _at++;
        }

        string token = _text[start.._at].Replace("_", string.Empty, StringComparison.Ordinal);
        if (long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l))
        {
            return l;
        }

        if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
        {
            return d;
        }

        return Unread; // hexadecimal, complex, or a number too large for a long
    }

    private string StringLiteral()
    {
        char quote = Peek();
        bool triple = PeekAt(1) == quote && PeekAt(2) == quote;
        _at += triple ? 3 : 1;
        var sb = new StringBuilder();
        while (true)
        {
            if (_at >= _text.Length)
            {
                throw new FormatException("a string that does not end");
            }

            char c = _text[_at];
            if (c == '\\' && _at + 1 < _text.Length)
            {
                char e = _text[_at + 1];
                sb.Append(e switch { 'n' => '\n', 't' => '\t', _ => e });
                _at += 2;
                continue;
            }

            if (c == quote && (!triple || (PeekAt(1) == quote && PeekAt(2) == quote)))
            {
                _at += triple ? 3 : 1;
                return sb.ToString();
            }

            if (c == '\n' && !triple)
            {
                throw new FormatException("a string that does not end on its line");
            }

            sb.Append(c);
            _at++;
        }
    }

    private string? Identifier()
    {
        if (_at >= _text.Length || !(char.IsLetter(_text[_at]) || _text[_at] == '_'))
        {
            return null;
        }

        int start = _at;
        while (_at < _text.Length && (char.IsLetterOrDigit(_text[_at]) || _text[_at] == '_'))
        {
            _at++;
        }

        return _text[start.._at];
    }

    private void Expect(char c)
    {
        if (Peek() != c)
        {
            throw new FormatException($"expected '{c}'");
        }

        _at++;
    }

    private void SkipBlank(bool newlines)
    {
        while (_at < _text.Length)
        {
            char c = _text[_at];
            if (c == '#' && newlines)
            {
                while (_at < _text.Length && _text[_at] != '\n')
                {
                    _at++;
                }
            }
            else if (c is ' ' or '\t' or '\r' || (c == '\\' && PeekAt(1) == '\n') || (newlines && c == '\n'))
            {
                _at += c == '\\' ? 2 : 1;
            }
            else
            {
                return;
            }
        }
    }

    private char Peek() => _at < _text.Length ? _text[_at] : '\0';

    private char PeekAt(int offset) => _at + offset < _text.Length ? _text[_at + offset] : '\0';
}
