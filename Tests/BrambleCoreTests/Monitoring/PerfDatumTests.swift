import Testing

@testable import BrambleCore

@Suite struct PerfDatumTests {
    @Test func emptyTrailingFieldsAreLeftOffAndInnerOnesKept() {
        #expect(PerfDatum("epoch", 7).rendered == "epoch=7")
        #expect(PerfDatum("sessions", 1, min: 0).rendered == "sessions=1;;;0")
        #expect(PerfDatum("queue_depth", 3, critical: .above(100), min: 0).rendered == "queue_depth=3;;100;0")
        #expect(PerfDatum("stored", 1024, unit: .bytes, warning: .above(10), critical: .above(20), min: 0).rendered == "stored=1024B;10;20;0")
    }

    @Test func aLowScoreAlertsThroughARangeOpenAbove() {
        // "2:" is [2, ∞): Nagios alerts outside it, i.e. below 2. A bare "2" would alert above 2.
        #expect(PerfDatum("score", 1, warning: .below(12), critical: .below(2), min: 0, max: 12).rendered == "score=1;12:;2:;0;12")
        #expect(PerfDatum("last_check_age", 40, unit: .seconds, warning: .above(120), critical: .above(300), min: 0).rendered
                == "last_check_age=40s;120;300;0")
    }

    @Test func labelsAreQuotedWhenTheyHoldASpaceOrAQuote() {
        #expect(PerfDatum.quoted("node-a_score") == "node-a_score")
        #expect(PerfDatum.quoted("node a_score") == "'node a_score'")
        #expect(PerfDatum.quoted("it's") == "'it''s'")
        #expect(PerfDatum.quoted("a=b|c\nd") == "a_b_c_d")
        #expect(PerfDatum.quoted("") == "_")
        #expect(PerfDatum("o'brien score", 3).rendered == "'o''brien score'=3")
        // A hostile node's 1 MiB name makes a bounded label.
        #expect(PerfDatum.quoted(String(repeating: "x", count: 1 << 20) + "_score") == String(repeating: "x", count: 64))
    }

    @Test func numbersNeverUseExponentsAndKeepThreeDecimals() {
        #expect(PerfDatum.number(12) == "12")
        #expect(PerfDatum.number(0) == "0")
        #expect(PerfDatum.number(0.0123) == "0.012")
        #expect(PerfDatum.number(1.5) == "1.5")
        #expect(PerfDatum.number(2.0004) == "2")
        #expect(PerfDatum.number(-0.5) == "-0.5")
        #expect(PerfDatum.number(-3.25) == "-3.25")
        #expect(PerfDatum.number(1e12) == "1000000000000")
        #expect(PerfDatum.number(1e17) == "100000000000000000")
        #expect(PerfDatum.number(1e20) == "U")
        #expect(PerfDatum.number(.nan) == "U")
        #expect(PerfDatum.number(.infinity) == "U")
    }
}
