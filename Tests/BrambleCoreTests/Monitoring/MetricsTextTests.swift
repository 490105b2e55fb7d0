import Testing

@testable import BrambleCore

@Suite struct MetricsTextTests {
    static let text = """
        # HELP bramble_queue_depth_total Not this one
        bramble_queue_depth_total 99
        # HELP bramble_queue_depth Items queued or in flight, not yet acknowledged
        # TYPE bramble_queue_depth gauge
        bramble_queue_depth{shard="x"} 7
        bramble_queue_depth 12.0
        bramble_epoch 3 1700000000000
        bramble_broken NaN
        """

    @Test func theUnlabelledSampleIsFoundAmongLookalikes() {
        #expect(MetricsText.value(of: "bramble_queue_depth", in: Self.text) == 12)
        #expect(MetricsText.value(of: "bramble_epoch", in: Self.text) == 3, "a timestamp after the value")
    }

    @Test func aMissingOrNonNumericSampleIsNil() {
        #expect(MetricsText.value(of: "bramble_missing", in: Self.text) == nil)
        #expect(MetricsText.value(of: "bramble_broken", in: Self.text) == nil)
        #expect(MetricsText.value(of: "bramble_queue_depth", in: "") == nil)
        #expect(MetricsText.value(of: "bramble_queue_depth", in: "bramble_queue_depth") == nil)
    }
}
