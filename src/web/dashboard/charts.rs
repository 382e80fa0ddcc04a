//! Server-rendered SVG charts (no script): the trend of passing controls, drawn as a view
//! model the template turns into `<svg>` elements.

use chrono::NaiveDate;
use serde::Serialize;

/// A line chart of one series over days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineChart {
    pub width: u32,
    pub height: u32,
    /// `points` of the polyline (`x,y x,y …`).
    pub points: String,
    /// The area under the line, as a polygon's points.
    pub area: String,
    /// Horizontal grid lines with their labels.
    pub grid: Vec<GridLine>,
    /// Labels under the x axis.
    pub x_labels: Vec<AxisLabel>,
    /// What the chart says, for assistive technology and as its caption.
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridLine {
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AxisLabel {
    pub x: f64,
    pub label: String,
    /// SVG `text-anchor`: the first label starts at its x, the last ends there.
    pub anchor: &'static str,
}

const LEFT: f64 = 36.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// A count per day (`values[i]` for `first + i` days), scaled to the highest day.
pub fn counts(first: NaiveDate, values: &[usize], what: &str) -> LineChart {
    let high = values.iter().copied().max().unwrap_or(0);
    let total: usize = values.iter().sum();
    let today = values.last().copied().unwrap_or(0);
    let mut chart = trend(first, values, high.max(1), what);
    chart.summary = format!(
        "{what} over the last {} days: {total} in all, {today} today, at most {high} in a day.",
        values.len()
    );
    chart
}

/// Passing controls per day (`values[i]` for `first + i` days), out of `max`.
pub fn trend(first: NaiveDate, values: &[usize], max: usize, what: &str) -> LineChart {
    let (width, height) = (720u32, 180u32);
    let plot_w = f64::from(width) - LEFT - RIGHT;
    let plot_h = f64::from(height) - TOP - BOTTOM;
    let max = max.max(1) as f64;
    let n = values.len().max(2) as f64 - 1.0;
    let x = |i: usize| LEFT + plot_w * i as f64 / n;
    let y = |v: usize| TOP + plot_h * (1.0 - v as f64 / max);
    let coords: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (x(i), y(v)))
        .collect();
    let points = coords
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let area = match (coords.first(), coords.last()) {
        (Some(first), Some(last)) => format!(
            "{:.1},{:.1} {points} {:.1},{:.1}",
            first.0,
            TOP + plot_h,
            last.0,
            TOP + plot_h
        ),
        _ => String::new(),
    };
    let grid = [0.0, 0.5, 1.0]
        .iter()
        .map(|f| GridLine {
            y: TOP + plot_h * (1.0 - f),
            label: format!("{}", (max * f).round() as usize),
        })
        .collect();
    let last = values.len().saturating_sub(1);
    let x_labels = [(0, "start"), (last / 2, "middle"), (last, "end")]
        .iter()
        .map(|&(i, anchor)| AxisLabel {
            x: x(i),
            label: (first + chrono::Duration::days(i as i64))
                .format("%b %-d")
                .to_string(),
            anchor,
        })
        .collect();
    let now = values.last().copied().unwrap_or(0);
    let low = values.iter().copied().min().unwrap_or(0);
    let high = values.iter().copied().max().unwrap_or(0);
    LineChart {
        width,
        height,
        points,
        area,
        grid,
        x_labels,
        summary: format!(
            "{what} over the last {} days: {now} of {} today, between {low} and {high}.",
            values.len(),
            max as usize
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_scales_into_the_plot() {
        let first = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        let c = trend(first, &[0, 5, 10], 10, "Passing controls");
        assert_eq!(c.points, "36.0,158.0 374.0,83.0 712.0,8.0");
        assert!(c.area.starts_with("36.0,158.0 36.0,158.0"));
        assert_eq!(c.x_labels[2].label, "Sep 3");
        assert_eq!(
            c.summary,
            "Passing controls over the last 3 days: 10 of 10 today, between 0 and 10."
        );
        // No data: still a drawable chart.
        let empty = trend(first, &[], 0, "x");
        assert!(empty.points.is_empty());
    }
}
