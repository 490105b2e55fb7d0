import BrambleAPI
import BrambleCore
@preconcurrency import Crypto
import Foundation
import BrambleNet
import Hummingbird

/// The Administration Service's API behind the `bramble` CLI.
struct AdminRoutes {
    let store: ConfigStore
    let srpID: String
    /// The mail server (activation instructions go out through its submission service).
    var mail: MessagingAgent.Configuration?
    /// A device was provisioned or removed: the Dispatcher loads the keys (and tells the
    /// relay) now rather than at the next account count.
    var devicesChanged: @Sendable () -> Void = {}
    /// A policy changed or a command was queued: this node's Policy Service looks now (if
    /// it is the primary's; the primary's own looks within a couple of seconds).
    var policyChanged: @Sendable () -> Void = {}

    func register(on router: Router<BasicRequestContext>) {
        router.post(RouterPath(AdminAPI.users)) { request, context -> EditedResponse<UserRecord> in
            let body = try await request.decodeJSON(NewUser.self, context: context)
            let email = Email.canonical(body.email)
            guard Email.isPlausible(email) else { throw APIErrorBody(.badRequest, "'\(body.email)' is not a valid e-mail address") }
            let name = body.name ?? ""
            guard name.utf8.count <= 256 else { throw APIErrorBody(.badRequest, "'name' is longer than 256 bytes") }
            guard !Email.hasNUL(name) else { throw APIErrorBody(.badRequest, "'name' may not contain NUL (\\u0000)") }
            return EditedResponse(status: .created, response: try await mapped { try await store.addUser(email: email, displayName: name) })
        }
        router.get(RouterPath(AdminAPI.users)) { _, _ in UserList(users: try await store.users()) }
        router.get(RouterPath(AdminAPI.im)) { _, _ in try await store.imStatus() }
        router.patch(RouterPath(AdminAPI.im)) { request, context -> IMStatus in
            let change = try await request.decodeJSON(IMSettingsChange.self, context: context)
            var settings = try await store.imSettings()
            if let max = change.max_sessions {
                guard (1...1_000_000).contains(max) else { throw APIErrorBody(.badRequest, "'max_sessions' must be 1…1000000") }
                settings.maxSessions = max
            }
            if let idle = change.idle_timeout_ms {
                guard (1_000...(30 * 86_400_000)).contains(idle) else { throw APIErrorBody(.badRequest, "'idle_timeout_ms' must be 1000…2592000000 (1 s to 30 days)") }
                settings.idleTimeoutMs = idle
            }
            if change.clear_max_sessions == true { settings.maxSessions = nil }
            if change.clear_idle_timeout == true { settings.idleTimeoutMs = nil }
            try await store.setIMSettings(settings)
            return try await store.imStatus()
        }
        router.get("/admin/users/{email}") { _, context -> UserRecord in
            let email = try Self.emailParameter(context)
            guard let user = try await store.users(email: email).first else { throw APIErrorBody(.notFound, "no user \(email)") }
            return user
        }
        router.post("/admin/users/{email}/activation") { request, context -> ActivationSet in
            let email = Email.canonical(try Self.emailParameter(context))
            let body = try await request.decodeJSON(NewActivation.self, context: context)
            return try await setActivation(email: email, body)
        }
        router.patch("/admin/users/{email}") { request, context -> UserRecord in
            let email = try Self.emailParameter(context)
            let body = try await request.decodeJSON(UserSettings.self, context: context)
            if let on = body.reconciliation {
                guard try await store.setReconciliation(email: email, on) else { throw APIErrorBody(.notFound, "no user \(email)") }
            }
            if let on = body.im {
                guard try await store.setUserIM(email: email, on: on) else { throw APIErrorBody(.notFound, "no user \(email)") }
            }
            guard let user = try await store.users(email: email).first else { throw APIErrorBody(.notFound, "no user \(email)") }
            return user
        }
        router.delete("/admin/users/{email}") { _, context -> Removed in
            let email = try Self.emailParameter(context)
            guard try await store.removeUser(email: email) else { throw APIErrorBody(.notFound, "no user \(email)") }
            devicesChanged()
            return Removed(removed: email)
        }
        router.post(RouterPath(AdminAPI.devices)) { request, context -> EditedResponse<Provisioned> in
            let body = try await request.decodeJSON(NewDevice.self, context: context)
            guard let pin = PIN(body.pin) else { throw APIErrorBody(.badRequest, "PIN '\(body.pin)' is not 1–8 hex digits") }
            let email = Email.canonical(body.email)
            let key = SymmetricKey(size: .bits256)
            let device = try await mapped { try await store.provisionDevice(email: email, pin: pin, key: key) }
            devicesChanged()
            let domain = try? await store.domainKey()
            return EditedResponse(status: .created, response: Provisioned(
                device: device, credential: DeviceCredential(pin: pin, email: email, srpID: srpID, masterKey: key, domainKey: domain?.publicKey)))
        }
        router.get(RouterPath(AdminAPI.devices)) { _, _ in DeviceList(devices: try await store.devices()) }
        router.get("/admin/devices/{pin}") { _, context -> DeviceRecord in
            let text = try context.parameters.require("pin")
            guard let pin = PIN(text) else { throw APIErrorBody(.badRequest, "PIN '\(text)' is not 1–8 hex digits") }
            guard let device = try await store.devices(pin: pin).first else { throw APIErrorBody(.notFound, "no device \(pin)") }
            return device
        }
        registerFilters(on: router)
        registerPushApps(on: router)
        registerPolicies(on: router)
        router.post(RouterPath(AdminAPI.resealKeys)) { _, _ in KeysResealed(resealed: try await store.resealMasterKeys()) }
    }

    /// Push applications: a token each, made here and shown once.
    /// A new activation password: checked, reduced to its secret (the password itself is
    /// never stored or logged), and mailed to the user if asked.
    private func setActivation(email: String, _ body: NewActivation) async throws -> ActivationSet {
        let generate = body.generate == true
        guard generate != (body.password != nil) else { throw APIErrorBody(.badRequest, "give a password or generate one, not both or neither") }
        let password = body.password ?? ActivationPassword.generate()
        do { try ActivationPassword.validate(password) } catch { throw APIErrorBody(.badRequest, error.description) }
        let seconds = body.expires_seconds ?? ActivationPassword.defaultExpirySeconds
        guard (1...NewActivation.maxExpirySeconds).contains(seconds) else {
            throw APIErrorBody(.badRequest, "expires_seconds must be 1…\(NewActivation.maxExpirySeconds)")
        }
        let expires = Date().addingTimeInterval(TimeInterval(seconds))
        let status = try await mapped {
            try await store.setActivationPassword(email: email, secret: ActivationPassword.secret(password: password, email: email), expiresAt: expires)
        }
        // The password is set whatever becomes of the instructions: a generated one is
        // answered either way, so it is never lost.
        var (sent, failure): (Bool, String?) = (false, nil)
        if body.send_instructions == true {
            if let mail, let submission = mail.submission {
                let message = ActivationMail.instructions(to: email, from: email, password: password, expires: expires,
                                                          messageID: "<activation.\(UInt64.random(in: 0...UInt64.max))@bramble.invalid>", date: Date())
                do {
                    try await withDeadline(ms: 15_000) {
                        try await SMTPSession.with(to: submission, tls: mail.tls, connectTimeout: .seconds(2)) { smtp in
                            try await smtp.authenticatePlain(as: email, login: mail.serviceUser, password: mail.servicePassword)
                            _ = try await smtp.send(from: email, to: [email], message: String(decoding: message, as: UTF8.self))
                        }
                    }
                    sent = true
                } catch {
                    failure = "the mail server did not take them: \(describe(error))"
                }
            } else {
                failure = "this node has no mail submission service"
            }
        }
        return ActivationSet(email: email, activation: status, password: generate ? password : nil, instructions_sent: sent, instructions_error: failure)
    }

    /// The `{email}` of a path, percent-decoded (the router leaves it as sent: the CLI
    /// escapes what a path may not hold), in its canonical form.
    static func emailParameter(_ context: some RequestContext) throws -> String {
        let raw = try context.parameters.require("email")
        guard let decoded = raw.removingPercentEncoding else { throw APIErrorBody(.badRequest, "'\(raw)' is not a percent-encoded e-mail address") }
        return Email.canonical(decoded)
    }

    private func registerPushApps(on router: Router<BasicRequestContext>) {
        router.post(RouterPath(AdminAPI.apps)) { request, context -> EditedResponse<PushAppCreated> in
            let body = try await request.decodeJSON(NewPushApp.self, context: context)
            guard NewPushApp.isValidName(body.name) else {
                throw APIErrorBody(.badRequest, "an application's name is 1–64 letters, digits, '.', '-' or '_'")
            }
            let token = Self.newPushToken()
            let app = try await mapped { try await store.addPushApp(name: body.name, tokenSHA256: Array(SHA256.hash(data: Array(token.utf8)))) }
            return EditedResponse(status: .created, response: PushAppCreated(name: app.name, token: token, created_at: app.created_at))
        }
        router.get(RouterPath(AdminAPI.apps)) { _, _ in PushAppList(apps: try await store.pushApps()) }
        router.delete("/admin/apps/{name}") { _, context -> Removed in
            let name = try context.parameters.require("name")
            guard try await store.revokePushApp(name: name) else { throw APIErrorBody(.notFound, "no live push application \(name)") }
            return Removed(removed: name)
        }
    }

    /// `bpa_` and 256 random bits, base64url (the prefix tells a leaked token's kind).
    static func newPushToken() -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return PushAppToken.prefix + bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private func registerFilters(on router: Router<BasicRequestContext>) {
        router.get(RouterPath(AdminAPI.filters)) { _, _ in FilterList(filters: try await store.filters()) }
        router.post(RouterPath(AdminAPI.filters)) { request, context -> EditedResponse<MailFilterRule> in
            let body = try await request.decodeJSON(NewFilter.self, context: context)
            guard let field = MailFilterRule.Field(rawValue: body.field) else {
                throw APIErrorBody(.badRequest, "'field' must be one of \(MailFilterRule.Field.allCases.map(\.rawValue).joined(separator: ", ")); got '\(body.field)'")
            }
            guard let action = MailFilterRule.Action(rawValue: body.action) else {
                throw APIErrorBody(.badRequest, "'action' must be one of \(MailFilterRule.Action.allCases.map(\.rawValue).joined(separator: ", ")); got '\(body.action)'")
            }
            let contains = body.contains.trimmingCharacters(in: .whitespaces)
            guard !contains.isEmpty, contains.utf8.count <= MailFilterRule.maxPatternLength else {
                throw APIErrorBody(.badRequest, "'contains' must be 1–\(MailFilterRule.maxPatternLength) bytes")
            }
            guard !Email.hasNUL(contains) else { throw APIErrorBody(.badRequest, "'contains' may not contain NUL (\\u0000)") }
            if field == .importance, MailImportance(rawValue: contains.lowercased()) == nil {
                throw APIErrorBody(.badRequest, "for importance, 'contains' must be high, normal or low")
            }
            if let position = body.position, position < 1 { throw APIErrorBody(.badRequest, "'position' must be 1 or more") }
            let rule = try await mapped { try await store.addFilter(field: field, contains: field == .importance ? contains.lowercased() : contains,
                                                                    action: action, position: body.position) }
            return EditedResponse(status: .created, response: rule)
        }
        router.delete("/admin/filters/{id}") { _, context -> Removed in
            let id = try Self.filterID(context)
            guard try await store.removeFilter(id: id) else { throw APIErrorBody(.notFound, "no filter rule \(id)") }
            return Removed(removed: "\(id)")
        }
        router.post("/admin/filters/{id}/move") { request, context -> MailFilterRule in
            let id = try Self.filterID(context)
            let body = try await request.decodeJSON(FilterMove.self, context: context)
            guard body.position >= 1 else { throw APIErrorBody(.badRequest, "'position' must be 1 or more") }
            guard let rule = try await store.moveFilter(id: id, to: body.position) else { throw APIErrorBody(.notFound, "no filter rule \(id)") }
            return rule
        }
    }

    private static func filterID(_ context: BasicRequestContext) throws -> Int64 {
        let text = try context.parameters.require("id")
        guard let id = Int64(text), id > 0 else { throw APIErrorBody(.badRequest, "filter id '\(text)' is not a positive number") }
        return id
    }

    /// Turns store conflicts and misses into 409 and 404.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            switch error.kind {
            case .conflict: throw APIErrorBody(.conflict, error.description)
            case .notFound: throw APIErrorBody(.notFound, error.description)
            case .readOnly: throw APIErrorBody(.unavailable, "the configuration database primary is moving; try again")
            }
        }
    }

    // MARK: The Policy Service

    private func registerPolicies(on router: Router<BasicRequestContext>) {
        router.get(RouterPath(AdminAPI.policies)) { _, _ in PolicyList(policies: try await store.policies()) }
        router.get("/admin/policies/{name}") { _, context -> PolicyRecord in
            let name = try Self.policyName(context)
            guard let policy = try await store.policies(name: name).first else { throw APIErrorBody(.notFound, "no policy \(name)") }
            return policy
        }
        router.put("/admin/policies/{name}") { request, context -> PolicyRecord in
            let name = try Self.policyName(context)
            let change = try await request.decodeJSON(PolicyChange.self, context: context)
            guard change != PolicyChange() else { throw APIErrorBody(.badRequest, "nothing to change: give at least one rule") }
            do {
                let record = try await mapped { try await store.setPolicy(name: name, change) }
                policyChanged()
                return record
            } catch let error as PayloadError {
                throw APIErrorBody(.badRequest, error.description)
            }
        }
        router.post("/admin/policies/{name}/assign") { request, context -> PolicyAssigned in
            let name = try Self.policyName(context)
            let body = try await request.decodeJSON(PolicyAssignment.self, context: context)
            let emails = Array(Set(body.emails.map(Email.canonical))).sorted()
            guard !emails.isEmpty, emails.count <= PolicyAssignment.maxUsers else {
                throw APIErrorBody(.badRequest, "'emails' holds 1…\(PolicyAssignment.maxUsers) addresses")
            }
            let assigned = try await mapped { try await store.assignPolicy(name: name, emails: emails) }
            policyChanged()
            return assigned
        }
        router.post("/admin/devices/{pin}/{command}") { request, context -> EditedResponse<DeviceCommandRecord> in
            let text = try context.parameters.require("pin")
            guard let pin = PIN(text) else { throw APIErrorBody(.badRequest, "PIN '\(text)' is not 1–8 hex digits") }
            let verb = try context.parameters.require("command")
            guard let kind = ITCommand.Kind(name: verb) else { throw APIErrorBody(.notFound, "no device command '\(verb)' (lock, wipe, wipe-work)") }
            var lock: DeviceLock?
            if kind == .lock {
                let body = try await request.decodeJSON(DeviceLockRequest.self, context: context)
                do throws(ActivationPassword.Refused) { try DeviceLock.validate(body.password) } catch { throw APIErrorBody(.badRequest, error.description) }
                // The device password must meet the device's own IT policy.
                if let policy = try await store.policy(pin: pin), body.password.count < policy.minPasswordLength {
                    throw APIErrorBody(.badRequest, "IT policy \(policy.name) asks for a device password of at least \(policy.minPasswordLength) characters")
                }
                lock = DeviceLock.make(password: body.password)
            }
            let command = try await mapped { try await store.issueCommand(pin: pin, kind: kind, lock: lock) }
            policyChanged()
            return EditedResponse(status: .accepted, response: command)
        }
    }

    /// The `{name}` of a policy's path, checked as a policy name.
    static func policyName(_ context: some RequestContext) throws -> String {
        let name = try context.parameters.require("name")
        do { _ = try ITPolicy(name: name).validated() } catch { throw APIErrorBody(.badRequest, error.description) }
        return name
    }
}
