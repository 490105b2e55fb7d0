import BrambleAPI
import Hummingbird

/// The mail server's notifications: "this user's INBOX got mail" (`MailAPI.notify`).
struct MailRoutes {
    let agent: MessagingAgent
    let activation: ActivationService

    func register(on router: Router<BasicRequestContext>) {
        router.post(RouterPath(MailAPI.notify)) { request, _ -> Response in
            guard let user = request.uri.queryParameters["user"].map(String.init), !user.isEmpty,
                  user.utf8.count <= MailAPI.maxUserLength else {
                throw APIErrorBody(.badRequest, "'user' must be the mailbox's address, 1–\(MailAPI.maxUserLength) bytes")
            }
            // 409 from a standby: the mail server's script then tries the other node and
            // remembers which one took it.
            guard await agent.notify(email: user) else { throw APIErrorBody(.notPrimary, "this node is not the primary") }
            activation.notify(email: user)
            return Response(status: .accepted)
        }
    }
}
