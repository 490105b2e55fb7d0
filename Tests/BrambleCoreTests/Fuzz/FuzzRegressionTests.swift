import BrambleCore
import Foundation
import Testing

/// Inputs the fuzz targets (`make fuzz`) found a crash with, after the fix; each input is
/// also in the target's committed corpus (Tests/FuzzCorpus/TARGET/finding-*).
@Suite struct FuzzRegressionTests {
    /// `settings`, finding-shown-state-overflow.json: a device's state file with the
    /// high-water mark one below UInt64.max; recording UInt64.max moved the mark to the top
    /// and the next step of `insert` overflowed: a trap, on that item and again on its resend.
    @Test func shownSetReachesTheTopOfTheRange() throws {
        var shown = try JSONDecoder().decode(ShownSet.self, from: Data(#"{"high_water":18446744073709551614,"above":[]}"#.utf8))
        let inserted = shown.insert(.max)
        #expect(inserted)
        #expect(shown.highWater == .max && shown.above.isEmpty)
        let again = shown.insert(.max)
        #expect(!again)
        #expect(shown.contains(0) && shown.contains(.max))
    }

    /// The same top reached from below, the last number recorded before the gap closes.
    @Test func shownSetClosesAGapAtTheTop() throws {
        var shown = try JSONDecoder().decode(ShownSet.self, from: Data(#"{"high_water":18446744073709551613,"above":[18446744073709551615]}"#.utf8))
        let inserted = shown.insert(.max - 1)
        #expect(inserted)
        #expect(shown.highWater == .max && shown.above.isEmpty)
    }
}
