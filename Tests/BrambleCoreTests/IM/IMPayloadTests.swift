import BrambleCore
import Crypto
import Foundation
import Testing

/// Instant messaging's wire payloads and device requests, the secrets the nodes seal, and
/// what the Collaboration Service reads from Prosody's stanzas.
@Suite struct IMPayloadTests {
    @Test func everyIMPayloadRoundTrips() throws {
        let outcome = IMSessionOutcome(jid: "demo1@example.test", state: .serverBusy, reason: "Server Busy", requestRef: 9)
        #expect(try IMSessionOutcome.decode(outcome.encoded()) == outcome)
        let message = IMMessage(from: "demo2@example.test", to: "demo1@example.test", id: "m1", body: "Grüße ✓", receivedAtMs: 1_800_000_000_123, ref: 4, error: nil)
        #expect(try IMMessage.decode(message.encoded()) == message)
        let contacts = IMContactList(contacts: [.init(jid: "demo2@example.test", name: "Zwei", presence: .busy, status: "Termin")])
        #expect(try IMContactList.decode(contacts.encoded()) == contacts)
        let update = IMPresenceUpdate(jid: "demo3@example.test", presence: .offline)
        #expect(try IMPresenceUpdate.decode(update.encoded()) == update)
        #expect(throws: PayloadError.self) { try IMSessionOutcome.decode(IMSessionOutcome(jid: "a@b", state: .failed).encoded().dropLast(1).map { $0 }) }
    }

    @Test func imRequestsFollowTheWireRules() throws {
        for request: DeviceRequest in [.imLogin(jid: "demo1@example.test", secret: .password("pw")), .imSend(to: "demo2@example.test", body: "hi"),
                                       .imPresence(.away), .imLogout] {
            #expect(try DeviceRequest.decode(request.encoded()) == request)
            #expect(request.isIM && !request.sendsMail && request.messageID == nil)
        }
        // A device may not send a sealed password, nor a full JID, an empty body, or "offline".
        let sealed = DeviceRequest.imLogin(jid: "demo1@example.test", secret: .sealed("s1.x")).encoded()
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(sealed) }
        #expect(try DeviceRequest.decodeStored(sealed) == .imLogin(jid: "demo1@example.test", secret: .sealed("s1.x")))
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.imLogin(jid: "demo1@example.test/phone", secret: .password("pw")).encoded()) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.imSend(to: "demo2@example.test", body: "").encoded()) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.imPresence(.offline).encoded()) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.imLogin(jid: "demo1@example.test", secret: .password("")).encoded()) }
    }

    @Test func bareJIDsAndPresenceMapping() {
        #expect(IMAddress.isBareJID("demo1@example.test"))
        for bad in ["demo1", "@example.test", "demo1@", "a@b@c", "demo1@example.test/r", "de mo@x.y", "a<b@x.y", ""] { #expect(!IMAddress.isBareJID(bad), "\(bad)") }
        #expect(IMAddress.bare("Demo1@Example.test/phone") == "demo1@example.test")
        #expect(IMPresence(type: nil, show: nil) == .available && IMPresence(type: nil, show: "xa") == .away)
        #expect(IMPresence(type: nil, show: "dnd") == .busy && IMPresence(type: "unavailable", show: "dnd") == .offline)
        #expect(IMPresence.busy.show == "dnd" && IMPresence.available.show == nil)
    }

    @Test func sealedSecretsAreBoundToPurposeAndPIN() throws {
        let kek = SymmetricKey(size: .bits256)
        let vault = MasterKeyVault(kek: kek)
        let sealed = vault.sealSecret(Array("hunter2".utf8), purpose: .imPassword, pin: PIN(0x2A00_F00D))
        #expect(sealed.hasPrefix("s1.") && !sealed.contains("hunter2"))
        #expect(try vault.openSecret(sealed, purpose: .imPassword, pin: PIN(0x2A00_F00D)) == Array("hunter2".utf8))
        #expect(throws: MasterKeyVault.SecretOpenFailure.self) { try vault.openSecret(sealed, purpose: .imSCRAMKeys, pin: PIN(0x2A00_F00D)) }
        #expect(throws: MasterKeyVault.SecretOpenFailure.self) { try vault.openSecret(sealed, purpose: .imPassword, pin: PIN(0x2A00_F00E)) }
        #expect(throws: MasterKeyVault.SecretOpenFailure.self) { try MasterKeyVault(kek: SymmetricKey(size: .bits256)).openSecret(sealed, purpose: .imPassword, pin: PIN(0x2A00_F00D)) }
        // During a rotation the previous KEK still opens it.
        #expect(try MasterKeyVault(kek: SymmetricKey(size: .bits256), previous: kek).openSecret(sealed, purpose: .imPassword, pin: PIN(0x2A00_F00D)) == Array("hunter2".utf8))
    }

    static func parse(_ xml: String) throws -> XMPPElement {
        var parser = XMPPStreamParser()
        let events = try parser.feed(Array(("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" + xml).utf8))
        guard case .stanza(let e)? = events.last else { throw PayloadError("no stanza") }
        return e
    }

    @Test func aLiveMessageIsKeyedByTheArchiveIDItsServerGaveIt() throws {
        let live = try Self.parse("""
            <message from='demo2@example.test/desk' to='demo1@example.test/bramble-2A00F00D' type='chat' id='m1'><body>hi &amp; bye</body>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='someone@else.test' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='demo1@example.test' id='A1'/></message>
            """)
        let m = try #require(XMPPStanzas.incoming(live, user: "demo1@example.test"))
        #expect(m.from == "demo2@example.test" && m.body == "hi & bye" && m.id == "m1" && m.archiveID == "A1" && m.deliveryKey == "m:demo2@example.test|m1")
        // No stanza-id: sender and id.
        let plain = try Self.parse("<message from='demo2@example.test/desk' type='chat' id='m2'><body>x</body></message>")
        #expect(XMPPStanzas.incoming(plain, user: "demo1@example.test")?.deliveryKey == "m:demo2@example.test|m2")
        // Not for the device: the user's own, groupchat, no body, errors.
        for xml in ["<message from='demo1@example.test/other' type='chat'><body>x</body></message>",
                    "<message from='room@conf.test/n' type='groupchat'><body>x</body></message>",
                    "<message from='demo2@example.test/d' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
                    "<message from='demo2@example.test/d' type='error' id='m'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"] {
            #expect(XMPPStanzas.incoming(try Self.parse(xml), user: "demo1@example.test") == nil, "\(xml)")
        }
        // A carbon of a message another resource got: the same message, the same key.
        let carbon = try Self.parse("""
            <message from='demo1@example.test' to='demo1@example.test/bramble-2A00F00D'><received xmlns='urn:xmpp:carbons:2'>\
            <forwarded xmlns='urn:xmpp:forward:0'><message from='demo2@example.test/desk' to='demo1@example.test/desk' type='chat' id='m1'>\
            <body>hi &amp; bye</body></message></forwarded></received></message>
            """)
        #expect(XMPPStanzas.incoming(carbon, user: "demo1@example.test")?.deliveryKey == m.deliveryKey)
        let forgedCarbon = try Self.parse("""
            <message from='evil@example.test/x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
            <message from='demo2@example.test/desk' type='chat' id='m1'><body>x</body></message></forwarded></received></message>
            """)
        #expect(XMPPStanzas.incoming(forgedCarbon, user: "demo1@example.test") == nil, "a carbon only from the user's own account")
        #expect(XMPPStanzas.bounce(try Self.parse("<message type='error' id='m9'><error><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"))! == ("m9", "item-not-found"))
    }

    @Test func archiveResultsAreTakenOnlyFromTheUsersOwnServerForTheirQuery() throws {
        let xml = """
            <message to='demo1@example.test/r'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A7'><forwarded xmlns='urn:xmpp:forward:0'>\
            <delay xmlns='urn:xmpp:delay' stamp='2026-12-06T10:00:00.500Z'/><message from='demo2@example.test/d' to='demo1@example.test' type='chat' id='m7'>\
            <body>archived</body></message></forwarded></result></message>
            """
        let result = try #require(XMPPStanzas.archived(try Self.parse(xml), user: "demo1@example.test", queryID: "q1"))
        #expect(result.archiveID == "A7" && result.message?.body == "archived" && result.message?.deliveryKey == "m:demo2@example.test|m7")
        #expect(result.message?.stamp == XMPPStanzas.parseTimestamp("2026-12-06T10:00:00.500Z"))
        #expect(XMPPStanzas.archived(try Self.parse(xml), user: "demo1@example.test", queryID: "q2") == nil, "another query's")
        let forged = xml.replacingOccurrences(of: "<message to='demo1@example.test/r'>", with: "<message from='evil@example.test/x' to='demo1@example.test/r'>")
        #expect(XMPPStanzas.archived(try Self.parse(forged), user: "demo1@example.test", queryID: "q1") == nil, "from someone else")
        let fin = try Self.parse("<iq type='result' id='i'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first>A1</first><last>A7</last></set></fin></iq>")
        #expect(XMPPStanzas.archiveEnd(fin)! == (true, "A7"))
        let query = XMPPStanzas.archiveQuery(id: "i", queryID: "q", after: "A7", max: 100).serialized()
        #expect(query.contains("<after>A7</after>") && query.contains("queryid=\"q\"") || query.contains("queryid='q'"))
    }

    @Test func presenceAndRoster() throws {
        let away = try Self.parse("<presence from='demo2@example.test/d'><show>away</show><status>lunch</status></presence>")
        #expect(XMPPStanzas.contactPresence(away, user: "demo1@example.test") == IMPresenceUpdate(jid: "demo2@example.test", presence: .away, status: "lunch"))
        #expect(XMPPStanzas.contactPresence(try Self.parse("<presence from='demo2@example.test' type='subscribe'/>"), user: "demo1@example.test") == nil)
        #expect(XMPPStanzas.contactPresence(try Self.parse("<presence from='demo1@example.test/other'/>"), user: "demo1@example.test") == nil)
        let roster = try Self.parse("""
            <iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='demo2@example.test' name='Zwei' subscription='both'/>\
            <item jid='demo3@example.test' subscription='remove'/><item jid='bad jid' subscription='both'/></query></iq>
            """)
        #expect(XMPPStanzas.roster(roster) == [.init(jid: "demo2@example.test", name: "Zwei", presence: .offline)])
    }
}
