import Foundation

/// SVG charts of a report: one per scenario (its primary metric per mode,
/// median bars with min-max whiskers) and one summary (every scenario's
/// modes as a ratio to the slow path). Every text's width is estimated
/// generously and the picture sized to hold it; a test renders the charts
/// and checks that nothing is drawn outside them.
public enum BenchChart {
    /// A width no sans-serif text of `size` exceeds (0.62 em per character).
    static func textWidth(_ text: String, size: Double) -> Double { Double(text.count) * size * 0.62 }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    static func color(_ mode: String, index: Int) -> String {
        if mode == "slow" { return "#9e9e9e" }
        if mode == "flowctl" { return "#2e7d32" }
        let palette = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037"]
        return palette[index % palette.count]
    }

    static func text(_ x: Double, _ y: Double, _ content: String, size: Double, anchor: String = "start",
                     weight: String? = nil) -> String {
        String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"%@\"%@>%@</text>\n", x, y, size, anchor,
               weight.map { " font-weight=\"\($0)\"" } ?? "", escape(content))
    }

    /// The scenario's primary metric per mode.
    public static func scenario(_ result: ScenarioResult) -> String {
        let metric = result.primaryMetric
        let summaries = result.summaries.filter { $0.primary != nil }
        let title = "\(result.scenario): \(metric.title), median and min-max of \(summaries.map(\.runs).max() ?? 0) runs"
        let subtitles = [result.description, BenchReport.describe(result.traffic)]
        let peak = max(summaries.compactMap { $0.primary?.max }.max() ?? 1, 1e-9)
        let ticks = [0, peak / 2, peak]
        let left = 20 + (ticks.map { textWidth(metric.format($0), size: 12) }.max() ?? 0) + 10
        let valueLabels = summaries.map { summary -> String in
            metric.format(summary.primary!.median) + (summary.ratioToSlow.map { String(format: " (%.2fx)", $0) } ?? "")
        }
        let slots = summaries.indices.map { index in
            max(90, textWidth(summaries[index].label, size: 13) + 20, textWidth(valueLabels[index], size: 12) + 16)
        }
        let width = max(left + slots.reduce(0, +) + 20, textWidth(title, size: 16) + 40,
                        (subtitles.map { textWidth($0, size: 12) }.max() ?? 0) + 40)
        let height = 420.0, top = 110.0, base = 360.0
        func y(_ value: Double) -> Double { base - (base - top) * value / peak }
        var svg = String(format: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\">\n",
                         width.rounded(.up), height)
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        svg += text(20, 28, title, size: 16, weight: "bold")
        for (line, subtitle) in subtitles.enumerated() { svg += text(20, 50 + Double(line) * 18, subtitle, size: 12) }
        for tick in ticks {
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y(tick),
                          width - 20, y(tick))
            svg += text(left - 6, y(tick) + 4, metric.format(tick), size: 12, anchor: "end")
        }
        svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", left, base, width - 20, base)
        var x = left
        for (index, summary) in summaries.enumerated() {
            let spread = summary.primary!, slot = slots[index], bar = min(70, slot * 0.6), center = x + slot / 2
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>\n",
                          center - bar / 2, y(spread.median), bar, max(0, base - y(spread.median)),
                          color(summary.mode, index: index))
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-width=\"1.5\"/>\n",
                          center, y(spread.min), center, y(spread.max))
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n",
                          center - 8, y(spread.max), center + 8, y(spread.max))
            svg += text(center, y(spread.max) - 8, valueLabels[index], size: 12, anchor: "middle")
            svg += text(center, base + 20, summary.label, size: 13, anchor: "middle")
            x += slot
        }
        return svg + "</svg>\n"
    }

    /// Every scenario's modes as a ratio of the primary metric to the slow path.
    public static func summary(_ results: [ScenarioResult]) -> String {
        struct Row { var label: String; var mode: String; var ratio: Double; var index: Int }
        var rows: [Row] = []
        for result in results {
            for (index, summary) in result.summaries.enumerated() where summary.mode != "slow" {
                guard let ratio = summary.ratioToSlow else { continue }
                rows.append(Row(label: "\(result.scenario) (\(result.primaryMetric.title)): \(summary.label)",
                                mode: summary.mode, ratio: ratio, index: index))
            }
        }
        let title = "Ratio to the slow path, by each traffic kind's own metric (higher is better)"
        let labelWidth = (rows.map { textWidth($0.label, size: 12) }.max() ?? 0) + 30
        let barArea = 420.0, valueWidth = textWidth("00.00x", size: 12) + 10
        let width = max(labelWidth + barArea + valueWidth + 20, textWidth(title, size: 15) + 40)
        let rowHeight = 24.0, top = 64.0
        let height = top + Double(rows.count) * rowHeight + 40
        let peak = max(1.2, rows.map(\.ratio).max() ?? 1)
        func x(_ ratio: Double) -> Double { labelWidth + barArea * ratio / peak }
        var svg = String(format: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\">\n",
                         width.rounded(.up), height)
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        svg += text(20, 28, title, size: 15, weight: "bold")
        for (number, row) in rows.enumerated() {
            let y = top + Double(number) * rowHeight
            svg += text(labelWidth - 10, y + 15, row.label, size: 12, anchor: "end")
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>\n",
                          labelWidth, y + 3, max(0, x(row.ratio) - labelWidth), rowHeight - 6, color(row.mode, index: row.index))
            svg += text(x(row.ratio) + 6, y + 15, String(format: "%.2fx", row.ratio), size: 12)
        }
        let one = x(1), bottom = top + Double(rows.count) * rowHeight
        svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c62828\" stroke-dasharray=\"4 3\"/>\n",
                      one, top - 6, one, bottom + 4)
        svg += text(one, bottom + 22, "slow path = 1.00x", size: 12, anchor: "middle")
        return svg + "</svg>\n"
    }
}
