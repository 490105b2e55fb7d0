/// Reads one sample from Prometheus' text exposition format (a node's `/metrics`), as a
/// monitor that wants one number needs: no full parser.
public enum MetricsText {
    /// The value of the sample named `name` without labels (`name 12` or `name 12.0`,
    /// perhaps with a timestamp after it); nil when there is none or it is not a finite
    /// number.
    public static func value(of name: String, in text: String) -> Double? {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) where line.hasPrefix(name) {
            let rest = line.dropFirst(name.count)
            guard rest.first == " " else { continue }  // another metric with this prefix, or labels
            let fields = rest.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first, let value = Double(first), value.isFinite else { return nil }
            return value
        }
        return nil
    }
}
