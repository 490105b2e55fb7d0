import Crypto
import Foundation

/// The stanzas the Collaboration Service writes and the meaning it reads from those it
/// receives (RFC 6121 messages, presence and roster; XEP-0313 message archive; XEP-0359
/// stanza ids; XEP-0199 ping). Pure: elements in, values out.
public enum XMPPStanzas {
    public static let rosterNS = "jabber:iq:roster"
    public static let mamNS = "urn:xmpp:mam:2"
    public static let rsmNS = "http://jabber.org/protocol/rsm"
    public static let forwardNS = "urn:xmpp:forward:0"
    public static let delayNS = "urn:xmpp:delay"
    public static let stanzaIDNS = "urn:xmpp:sid:0"
    public static let pingNS = "urn:xmpp:ping"
    public static let dataFormsNS = "jabber:x:data"
    public static let carbonsNS = "urn:xmpp:carbons:2"

    /// Message carbons (XEP-0280): a copy of every message the user's other resources get,
    /// so the device misses none that Prosody routed to a higher-priority client.
    public static func enableCarbons(id: String) -> XMPPElement {
        XMPPElement.build("iq", attributes: [("type", "set"), ("id", id)], children: [XMPPElement.build("enable", xmlns: carbonsNS)])
    }

    // MARK: Writing

    public static func message(to: String, id: String, body: String) -> XMPPElement {
        XMPPElement.build("message", attributes: [("to", to), ("type", "chat"), ("id", id)], children: [
            XMPPElement.build("body", text: body),
            XMPPElement.build("origin-id", xmlns: stanzaIDNS, attributes: [("id", id)]),
        ])
    }

    /// The device user's presence (priority 0: bare-JID messages reach this resource as
    /// much as any other), or unavailable.
    public static func presence(_ p: IMPresence) -> XMPPElement {
        if p == .offline { return XMPPElement.build("presence", attributes: [("type", "unavailable")]) }
        var children = [XMPPElement.build("priority", text: "0")]
        if let show = p.show { children.insert(XMPPElement.build("show", text: show), at: 0) }
        return XMPPElement.build("presence", children: children)
    }

    public static func rosterGet(id: String) -> XMPPElement {
        XMPPElement.build("iq", attributes: [("type", "get"), ("id", id)], children: [XMPPElement.build("query", xmlns: rosterNS)])
    }

    public static func ping(id: String, to domain: String) -> XMPPElement {
        XMPPElement.build("iq", attributes: [("type", "get"), ("id", id), ("to", domain)], children: [XMPPElement.build("ping", xmlns: pingNS)])
    }

    /// An archive query (XEP-0313) of the user's own archive: a page of at most `max`
    /// after archive id `after` (oldest first); or, with `latest`, the newest `max`;
    /// `with` narrows it to one contact, `start` to messages since then.
    public static func archiveQuery(id: String, queryID: String, after: String? = nil, latest: Bool = false, max: Int,
                                    with: String? = nil, start: Date? = nil) -> XMPPElement {
        var fields = [XMPPElement.build("field", attributes: [("var", "FORM_TYPE"), ("type", "hidden")], children: [XMPPElement.build("value", text: mamNS)])]
        if let with { fields.append(XMPPElement.build("field", attributes: [("var", "with")], children: [XMPPElement.build("value", text: with)])) }
        if let start {
            fields.append(XMPPElement.build("field", attributes: [("var", "start")], children: [XMPPElement.build("value", text: timestamp(start))]))
        }
        var set = [XMPPElement.build("max", text: "\(max)")]
        if let after { set.append(XMPPElement.build("after", text: after)) }
        if latest { set.append(XMPPElement.build("before")) }
        return XMPPElement.build("iq", attributes: [("type", "set"), ("id", id)], children: [
            XMPPElement.build("query", xmlns: mamNS, attributes: [("queryid", queryID)], children: [
                XMPPElement.build("x", xmlns: dataFormsNS, attributes: [("type", "submit")], children: fields),
                XMPPElement.build("set", xmlns: rsmNS, children: set),
            ]),
        ])
    }

    public static func iqResult(to request: XMPPElement) -> XMPPElement {
        var attributes: [(String, String)] = [("type", "result")]
        if let id = request[attribute: "id"] { attributes.append(("id", id)) }
        if let from = request[attribute: "from"] { attributes.append(("to", from)) }
        return XMPPElement.build("iq", attributes: attributes)
    }

    public static func iqError(to request: XMPPElement, condition: String = "service-unavailable") -> XMPPElement {
        var attributes: [(String, String)] = [("type", "error")]
        if let id = request[attribute: "id"] { attributes.append(("id", id)) }
        if let from = request[attribute: "from"] { attributes.append(("to", from)) }
        return XMPPElement.build("iq", attributes: attributes, children: [
            XMPPElement.build("error", attributes: [("type", "cancel")], children: [XMPPElement(condition, xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas")]),
        ])
    }

    // MARK: Reading

    /// A one-to-one message with text for the user, as received live or from the archive.
    public struct Incoming: Equatable, Sendable {
        public var from: String
        public var to: String
        public var id: String
        public var body: String
        /// The archive id the server gave it for `user` (XEP-0359 `stanza-id`), or the
        /// archive result's id.
        public var archiveID: String?
        public var stamp: Date?

        /// What a device is shown it once by: its sender and id, which every copy keeps (the
        /// live message, a carbon, offline storage, the archive's result); the archive id
        /// for a message without an id. Hashed when long: the database indexes it.
        public var deliveryKey: String {
            let key = id.isEmpty ? archiveID.map { "a:" + $0 } ?? "m:\(from)|" : "m:\(from)|\(id)"
            guard key.utf8.count > 256 else { return key }
            return "h:" + SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// A live message's meaning for `user` (a bare JID): nil for what is not a chat or
    /// normal message with a body from someone else (errors, groupchat, headlines, chat
    /// states, the user's own messages).
    public static func incoming(_ e: XMPPElement, user: String) -> Incoming? {
        guard e.localName == "message", e.child("result", xmlns: mamNS) == nil else { return nil }
        // A carbon copy of a message another of the user's resources received: only from
        // the user's own account (RFC: the server sends them from the bare JID).
        if let received = e.child("received", xmlns: carbonsNS) {
            guard IMAddress.bare(e[attribute: "from"] ?? user) == user,
                  let inner = received.child("forwarded", xmlns: forwardNS)?.child("message") else { return nil }
            return incoming(inner, user: user)
        }
        if e.child("sent", xmlns: carbonsNS) != nil { return nil }
        return chat(e, user: user, archiveID: e.children("stanza-id", xmlns: stanzaIDNS)
            .first { IMAddress.bare($0[attribute: "by"] ?? "") == user }?[attribute: "id"], stamp: nil)
    }

    /// An archive query's result message (`queryID` the query's): the archived message
    /// and its archive id. Only the user's own server may send one (no `from`, or the
    /// user's bare JID): anything else is refused (nil).
    public static func archived(_ e: XMPPElement, user: String, queryID: String) -> (archiveID: String, message: Incoming?)? {
        guard e.localName == "message", let result = e.child("result", xmlns: mamNS), result[attribute: "queryid"] == queryID,
              let archiveID = result[attribute: "id"], !archiveID.isEmpty else { return nil }
        if let from = e[attribute: "from"], IMAddress.bare(from) != user { return nil }
        guard let forwarded = result.child("forwarded", xmlns: forwardNS), let inner = forwarded.child("message") else {
            return (archiveID, nil)
        }
        let stamp = forwarded.child("delay", xmlns: delayNS)?[attribute: "stamp"].flatMap(parseTimestamp)
        return (archiveID, chat(inner, user: user, archiveID: archiveID, stamp: stamp))
    }

    /// The archive query's end (`<fin/>` in its iq result): whether it is complete and the
    /// last archive id of the page.
    public static func archiveEnd(_ iq: XMPPElement) -> (complete: Bool, last: String?)? {
        guard iq[attribute: "type"] == "result", let fin = iq.child("fin", xmlns: mamNS) else { return nil }
        let last = fin.child("set", xmlns: rsmNS)?.child("last")?.text
        return (fin[attribute: "complete"] == "true", last?.isEmpty == false ? last : nil)
    }

    private static func chat(_ e: XMPPElement, user: String, archiveID: String?, stamp: Date?) -> Incoming? {
        let type = e[attribute: "type"] ?? "normal"
        guard type == "chat" || type == "normal", let body = e.child("body"), let from = e[attribute: "from"] else { return nil }
        let sender = IMAddress.bare(from)
        guard sender != user, IMAddress.isBareJID(sender) else { return nil }
        return Incoming(from: sender, to: user, id: e[attribute: "id"] ?? "", body: body.text, archiveID: archiveID,
                        stamp: stamp ?? e.child("delay", xmlns: delayNS)?[attribute: "stamp"].flatMap(parseTimestamp))
    }

    /// A contact's presence (nil for the user's own, for subscription requests, errors, or probes).
    public static func contactPresence(_ e: XMPPElement, user: String) -> IMPresenceUpdate? {
        guard e.localName == "presence", let from = e[attribute: "from"] else { return nil }
        let type = e[attribute: "type"]
        guard type == nil || type == "unavailable" else { return nil }
        let contact = IMAddress.bare(from)
        guard contact != user, IMAddress.isBareJID(contact) else { return nil }
        return IMPresenceUpdate(jid: contact, presence: IMPresence(type: type, show: e.child("show")?.text),
                                status: String((e.child("status")?.text ?? "").prefix(IMContactList.maxStatusLength)))
    }

    /// The roster in an iq result or push: each contact's JID and name (presence unknown:
    /// offline until their presence comes).
    public static func roster(_ iq: XMPPElement) -> [IMContactList.Contact]? {
        guard let query = iq.child("query", xmlns: rosterNS) else { return nil }
        return query.children("item").compactMap { item in
            guard let jid = item[attribute: "jid"].map(IMAddress.bare), IMAddress.isBareJID(jid), item[attribute: "subscription"] != "remove" else { return nil }
            return IMContactList.Contact(jid: jid, name: String((item[attribute: "name"] ?? "").prefix(IMContactList.maxNameLength)), presence: .offline)
        }
    }

    /// The defined condition of an error element (RFC 6120 §8.3.3, §6.5): its first child
    /// that is not `<text/>`; `fallback` when it names none.
    public static func condition(of error: XMPPElement?, fallback: String = "undefined-condition") -> String {
        error?.elements.first(where: { $0.localName != "text" })?.localName ?? fallback
    }

    /// A message error the server bounced for one of ours: its id and condition.
    public static func bounce(_ e: XMPPElement) -> (id: String, condition: String)? {
        guard e.localName == "message", e[attribute: "type"] == "error", let id = e[attribute: "id"], id.utf8.count <= IMMessage.maxIDLength else { return nil }
        return (id, condition(of: e.child("error")))
    }

    // MARK: Time (XEP-0082)

    public static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }

    public static func parseTimestamp(_ s: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle().year().month().day().time(includingFractionalSeconds: true).parse(s) { return d }
        return try? Date.ISO8601FormatStyle().year().month().day().time(includingFractionalSeconds: false).parse(s)
    }
}

extension XMPPElement {
    /// The builder with every part optional (no namespace by default).
    public static func build(_ name: String, xmlns: String? = nil, attributes: [(String, String)] = [], text: String? = nil,
                             children: [XMPPElement] = []) -> XMPPElement {
        XMPPElement(name, xmlns: xmlns, attributes: attributes, text: text, children: children)
    }
}
