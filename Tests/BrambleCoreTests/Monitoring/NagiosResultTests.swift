import Testing

@testable import BrambleCore

@Suite struct NagiosResultTests {
    @Test func theExitCodesAreNagiosOnes() {
        #expect(NagiosState.allCases.map(\.rawValue) == [0, 1, 2, 3])
        #expect(NagiosState.allCases.map(\.word) == ["OK", "WARNING", "CRITICAL", "UNKNOWN"])
    }

    @Test func theWorstStateIsCriticalThenWarningThenUnknownThenOK() {
        #expect(NagiosState.worst([]) == .ok)
        #expect(NagiosState.worst([.ok, .unknown]) == .unknown)
        #expect(NagiosState.worst([.unknown, .warning, .ok]) == .warning)
        #expect(NagiosState.worst([.warning, .critical, .unknown]) == .critical)
    }

    @Test func theStatusLineCarriesThePerformanceDataAndTheDetailsFollowIt() {
        let result = NagiosResult(state: .warning, summary: "node-b unreachable", details: ["first", "second"],
                                  perfdata: [PerfDatum("score", 12, warning: .below(12), critical: .below(2), min: 0, max: 12),
                                             PerfDatum("time", 0.0123, unit: .seconds, min: 0)])
        #expect(result.rendered(service: "BRAMBLE PAIR") == """
            BRAMBLE PAIR WARNING - node-b unreachable | score=12;12:;2:;0;12 time=0.012s;;;0
            first
            second
            """)
        #expect(NagiosResult(state: .ok, summary: "fine").rendered(service: "X") == "X OK - fine")
    }

    @Test func textFromOutsideCannotBreakTheFormat() {
        let hostile = NagiosResult(state: .critical, summary: "a | b\nc\r\u{1B}[31md", details: ["x|y\nz"])
        #expect(hostile.rendered(service: "S") == "S CRITICAL - a / b c  [31md\nx/y z")
    }

    @Test func longOutputIsBounded() {
        let long = NagiosResult(state: .ok, summary: String(repeating: "s", count: 5_000),
                                details: (0..<100).map { "line \($0) " + String(repeating: "d", count: 1_000) })
        let lines = long.rendered(service: "S").split(separator: "\n")
        #expect(lines[0].count == "S OK - ".count + NagiosResult.maxSummary)
        #expect(lines[0].hasSuffix("s…"))
        #expect(lines.count == 1 + NagiosResult.maxDetails + 1)
        #expect(lines.dropFirst().dropLast().allSatisfy { $0.count == NagiosResult.maxDetail })
        #expect(lines.last == "… and 60 more")
    }
}
