import CoreMetrics
import Foundation
import Prometheus

/// Makes swift-metrics instruments for a component. In a daemon they are registered on the
/// Prometheus registry `/metrics` emits, each with its HELP text (swift-prometheus's
/// factory path has none); in tests any `MetricsFactory` (swift-metrics' `TestMetrics`).
public struct MetricsCatalog: Sendable {
    public let registry: PrometheusCollectorRegistry?
    let factory: any MetricsFactory

    /// Instruments on `registry`, with HELP.
    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
    }

    /// Instruments from `factory` (tests).
    public init(factory: any MetricsFactory) {
        self.registry = nil
        self.factory = factory
    }

    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> CoreMetrics.Counter {
        guard let registry else { return CoreMetrics.Counter(label: name, dimensions: labels, factory: factory) }
        let handler = labels.isEmpty ? registry.makeCounter(descriptor: Self.descriptor(name, help))
            : registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
        return CoreMetrics.Counter(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// A value that goes up and down (a Prometheus gauge).
    public func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> CoreMetrics.Meter {
        guard let registry else { return CoreMetrics.Meter(label: name, dimensions: labels, factory: factory) }
        let handler = labels.isEmpty ? registry.makeGauge(descriptor: Self.descriptor(name, help))
            : registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
        return CoreMetrics.Meter(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// Durations (a Prometheus histogram in seconds).
    public func timer(_ name: String, help: String, labels: [(String, String)] = [], buckets: [Duration]) -> CoreMetrics.Timer {
        guard let registry else { return CoreMetrics.Timer(label: name, dimensions: labels, factory: factory) }
        let handler = labels.isEmpty ? registry.makeDurationHistogram(descriptor: Self.descriptor(name, help), buckets: buckets)
            : registry.makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets)
        return CoreMetrics.Timer(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// `bramble_start_time_seconds`: when this process started (Unix time), so that a
    /// process restarting over and over shows as the value changing.
    public func startTime(_ date: Date = Date()) {
        gauge("bramble_start_time_seconds", help: "When this process started, in seconds since the Unix epoch")
            .set(date.timeIntervalSince1970)
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
