import ArgumentParser

@main
struct BrambleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble-bench",
        abstract: "Bramble's benchmarks; `make bench` runs them against a private cluster.",
        subcommands: [EnvelopeBench.self, EndToEndBench.self, FailoverBench.self, MailBench.self, SendBench.self, IMBench.self, ActivationBench.self, StreamCommand.self, DrillVerdictCommand.self, DrillTableCommand.self, RelayWindowCommand.self])
}
