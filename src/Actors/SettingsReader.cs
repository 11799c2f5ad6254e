using Akka.Configuration;

namespace ActorQueue;

/// <summary>Reads HOCON values and turns any problem into an error naming the full key and the value.</summary>
/// <param name="config">The settings, overrides already merged over defaults.</param>
/// <param name="path">The HOCON path the defaults live under, for error messages.</param>
/// <param name="overrides">The overriding section, if any: a key it sets is named under <paramref name="overridePath"/>.</param>
/// <param name="overridePath">The HOCON path of <paramref name="overrides"/>.</param>
internal readonly struct SettingsReader(Config config, string path, Config? overrides = null, string? overridePath = null)
{
    public string Key(string key) => overrides is not null && overrides.HasPath(key) ? $"{overridePath}.{key}" : $"{path}.{key}";

    public int Int(string key, int min)
    {
        var raw = Raw(key);
        if (!int.TryParse(raw, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value))
            throw Invalid(key, raw, "it must be a whole number");
        return value >= min ? value : throw Invalid(key, raw, $"it must be at least {min}");
    }

    public double Double(string key, double min, double max)
    {
        var raw = Raw(key);
        if (!double.TryParse(raw, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value))
            throw Invalid(key, raw, "it must be a number");
        return value >= min && value <= max ? value : throw Invalid(key, raw, $"it must be between {min} and {max}");
    }

    public TimeSpan Duration(string key, bool allowZero = false)
    {
        var raw = Raw(key);
        TimeSpan value;
        try { value = config.GetTimeSpan(key, null, allowInfinite: false); }
        catch (Exception e) { throw Invalid(key, raw, $"it must be a {(allowZero ? "non-negative" : "positive")} duration such as 500ms, 5s or 1m", e); }
        if (value < TimeSpan.Zero || (!allowZero && value == TimeSpan.Zero))
            throw Invalid(key, raw, allowZero ? "it must not be negative" : "it must be a positive duration");
        return value;
    }

    public bool Bool(string key)
    {
        var raw = Raw(key);
        try { return config.GetBoolean(key); }
        catch (Exception e) { throw Invalid(key, raw, "it must be on or off", e); }
    }

    public string String(string key) => Raw(key);

    public ConfigurationException Invalid(string key, string raw, string rule, Exception? inner = null) =>
        new($"Invalid ActorQueue setting {Key(key)} = {raw}: {rule}.", inner);

    private string Raw(string key)
    {
        if (!config.HasPath(key)) throw new ConfigurationException($"Missing ActorQueue setting {Key(key)}.");
        return config.GetString(key) ?? "";
    }
}

/// <summary>A setting that is valid alone but contradicts another one (a maximum below its minimum).</summary>
/// <param name="message">The error, naming both keys and the value.</param>
internal sealed class SettingConflictException(string message) : ConfigurationException(message);
