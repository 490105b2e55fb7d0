/// The Messaging Agent's global filter rules (BES: "global filters"): each rule matches one
/// field of a mail and says what to do with it; rules are tried in their order, the first
/// that matches decides, and a mail no rule matches is forwarded.
public struct MailFilterRule: Codable, Sendable, Equatable {
    public enum Field: String, Codable, Sendable, CaseIterable {
        case from, to, cc, subject
        /// The mail's importance: `high`, `normal` or `low` (Importance, X-Priority).
        case importance
    }

    public enum Action: String, Codable, Sendable, CaseIterable {
        case forward
        /// Forwarded, marked high priority on the device.
        case forwardHighPriority = "forward_high_priority"
        case doNotForward = "do_not_forward"
    }

    public static let maxPatternLength = 256
    public static let maxRules = 1000

    public var id: Int64
    /// 1-based place in the order.
    public var position: Int
    public var field: Field
    /// Matched case-insensitively as a substring (for importance: the whole value).
    public var contains: String
    public var action: Action

    public init(id: Int64, position: Int, field: Field, contains: String, action: Action) {
        (self.id, self.position, self.field, self.contains, self.action) = (id, position, field, contains, action)
    }

    public func matches(_ mail: MailItem) -> Bool {
        let needle = contains.lowercased()
        switch field {
        case .from: return mail.from.lowercased().contains(needle)
        case .to: return mail.to.contains { $0.lowercased().contains(needle) }
        case .cc: return mail.cc.contains { $0.lowercased().contains(needle) }
        case .subject: return mail.subject.lowercased().contains(needle)
        case .importance: return mail.importance.rawValue == needle
        }
    }

    /// What the rules (in any order given) say of `mail`.
    public static func decide(_ rules: [MailFilterRule], _ mail: MailItem) -> Action {
        rules.sorted { $0.position < $1.position }.first { $0.matches(mail) }?.action ?? .forward
    }
}

/// A mail's importance, from its Importance or X-Priority header.
public enum MailImportance: String, Codable, Sendable, CaseIterable {
    case high, normal, low

    /// From the raw header block of `Importance`, `X-Priority` and `Priority` lines.
    public static func parse(headers: [UInt8]) -> MailImportance {
        for line in String(decoding: headers.prefix(4096), as: UTF8.self).split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
            let value = parts[1].trimmingCharacters(in: .whitespaces).lowercased()
            switch name {
            case "importance", "priority":
                if value.hasPrefix("high") || value.hasPrefix("urgent") { return .high }
                if value.hasPrefix("low") || value.hasPrefix("non-urgent") { return .low }
            case "x-priority":
                if let digit = value.first?.wholeNumberValue {
                    if digit <= 2 { return .high }
                    if digit >= 4 { return .low }
                }
            default: break
            }
        }
        return .normal
    }
}
