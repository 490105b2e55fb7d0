import BrambleCore
@preconcurrency import Crypto
import Foundation
import Hummingbird

/// The Administration Service's API behind the `bramble` CLI.
struct AdminAPI {
    let store: ConfigStore
    let srpID: String

    struct NewUser: Decodable { var email: String; var name: String? }
    struct NewDevice: Decodable { var email: String; var pin: String }
    struct Users: ResponseEncodable { var users: [UserRecord] }
    struct Devices: ResponseEncodable { var devices: [DeviceRecord] }
    struct Removed: ResponseEncodable { var removed: String }
    struct Provisioned: ResponseEncodable { var device: DeviceRecord; var credential: DeviceCredential }

    func register(on router: Router<BasicRequestContext>) {
        let admin = router.group("admin")
        admin.post("users") { request, context -> EditedResponse<UserRecord> in
            let body = try await request.decodeJSON(NewUser.self, context: context)
            let email = body.email.trimmingCharacters(in: .whitespaces).lowercased()
            guard Email.isPlausible(email) else { throw APIError(.badRequest, "'\(body.email)' is not a valid e-mail address") }
            let name = body.name ?? ""
            guard name.utf8.count <= 256 else { throw APIError(.badRequest, "'name' is longer than 256 bytes") }
            return EditedResponse(status: .created, response: try await mapped { try await store.addUser(email: email, displayName: name) })
        }
        admin.get("users") { _, _ in Users(users: try await store.users()) }
        admin.get("users/{email}") { _, context -> UserRecord in
            let email = try context.parameters.require("email").lowercased()
            guard let user = try await store.users(email: email).first else { throw APIError(.notFound, "no user \(email)") }
            return user
        }
        admin.delete("users/{email}") { _, context -> Removed in
            let email = try context.parameters.require("email").lowercased()
            guard try await store.removeUser(email: email) else { throw APIError(.notFound, "no user \(email)") }
            return Removed(removed: email)
        }
        admin.post("devices") { request, context -> EditedResponse<Provisioned> in
            let body = try await request.decodeJSON(NewDevice.self, context: context)
            guard let pin = PIN(body.pin) else { throw APIError(.badRequest, "PIN '\(body.pin)' is not 1–8 hex digits") }
            let email = body.email.trimmingCharacters(in: .whitespaces).lowercased()
            let key = SymmetricKey(size: .bits256)
            let device = try await mapped { try await store.provisionDevice(email: email, pin: pin, key: key) }
            return EditedResponse(status: .created, response: Provisioned(
                device: device, credential: DeviceCredential(pin: pin, email: email, srpID: srpID, masterKey: key)))
        }
        admin.get("devices") { _, _ in Devices(devices: try await store.devices()) }
        admin.get("devices/{pin}") { _, context -> DeviceRecord in
            let text = try context.parameters.require("pin")
            guard let pin = PIN(text) else { throw APIError(.badRequest, "PIN '\(text)' is not 1–8 hex digits") }
            guard let device = try await store.devices(pin: pin).first else { throw APIError(.notFound, "no device \(pin)") }
            return device
        }
    }

    /// Turns store conflicts and misses into 409 and 404.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            switch error.kind {
            case .conflict: throw APIError(.conflict, error.description)
            case .notFound: throw APIError(.notFound, error.description)
            case .readOnly: throw APIError(.serviceUnavailable, "the configuration database primary is moving; try again")
            }
        }
    }
}

extension UserRecord: ResponseEncodable {}
extension DeviceRecord: ResponseEncodable {}
