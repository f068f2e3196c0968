//! The chart of frame latency against concurrent calls, one colour per system (p99 solid,
//! p50 dashed), with the 20 ms limit drawn across, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::search::Search;
use crate::trial::P99_LIMIT_US;

/// Draws `searches` into an SVG file at `path`.
pub fn draw(searches: &[Search], path: &Path) -> anyhow::Result<()> {
    let max_calls = searches.iter().flat_map(|s| s.trials.iter().map(|t| t.calls)).max().unwrap_or(100);
    let worst_ms = searches.iter().flat_map(|s| s.trials.iter().map(|t| t.latency.p99_us as f64 / 1_000.0)).fold(40.0_f64, f64::max);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Frame latency, caller send to Deepgram receive (one core per system)", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0u32..(max_calls + max_calls / 20), (0.05f64..worst_ms * 1.5).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("concurrent calls (50 media messages/s each)")
        .y_desc("latency, ms (log)")
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(plot_error)?;
    let limit_ms = P99_LIMIT_US as f64 / 1_000.0;
    chart
        .draw_series(LineSeries::new([(0, limit_ms), (max_calls + max_calls / 20, limit_ms)], BLACK.mix(0.7).stroke_width(2)))
        .map_err(plot_error)?
        .label("p99 limit, 20 ms")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.7).stroke_width(2)));
    let colours = [RGBColor(200, 40, 40), RGBColor(30, 90, 200), RGBColor(40, 150, 60)];
    for (search, colour) in searches.iter().zip(colours) {
        let p99: Vec<(u32, f64)> = search.trials.iter().map(|t| (t.calls, (t.latency.p99_us as f64 / 1_000.0).max(0.05))).collect();
        let p50: Vec<(u32, f64)> = search.trials.iter().map(|t| (t.calls, (t.latency.p50_us as f64 / 1_000.0).max(0.05))).collect();
        chart
            .draw_series(LineSeries::new(p99.clone(), colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{} p99", search.system.label()))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(p99.iter().map(|&point| Circle::new(point, 3, colour.filled()))).map_err(plot_error)?;
        chart
            .draw_series(DashedLineSeries::new(p50, 6, 4, colour.stroke_width(1)))
            .map_err(plot_error)?
            .label(format!("{} p50", search.system.label()))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.mix(0.6)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {error}")
}
