//! Charts drawn on the server as inline SVG (no script, no library): bars for counts per
//! label, lines for values over time. Each has a title and a text description for screen
//! readers; every text in it is escaped here, so a template may insert the result as it is.

/// The drawing area, in SVG user units (the picture scales to its box).
const W: f64 = 600.0;
const H: f64 = 200.0;
/// Room for the labels: left (values), bottom (labels).
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// Escapes text for SVG (XML) content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * power >= max {
            return step * power;
        }
    }
    10.0 * power
}

/// A number on an axis: whole when it is, else one decimal.
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn open(title: &str, description: &str) -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title><desc>{}</desc>",
        escape(title),
        escape(title),
        escape(description)
    )
}

fn axis(out: &mut String, top: f64, unit: &str) {
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let y = H - BOTTOM - (H - BOTTOM - TOP) * f64::from(i) / 4.0;
        out.push_str(&format!(
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{W}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}{}</text>",
            LEFT - 4.0,
            y + 4.0,
            number(v),
            escape(unit)
        ));
    }
}

/// Bars, one per `(label, value)`, on an axis in `unit`. Nothing to draw: a sentence instead.
pub fn bars(title: &str, points: &[(String, f64)], unit: &str) -> String {
    if points.is_empty() {
        return format!("<p class=\"muted\">{}: nothing yet.</p>", escape(title));
    }
    let max = points.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let top = nice_max(max);
    let description = points
        .iter()
        .map(|(l, v)| format!("{l}: {}{unit}", number(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = open(title, &description);
    axis(&mut out, top, unit);
    let slot = (W - LEFT) / points.len() as f64;
    let width = (slot * 0.7).max(1.0);
    let every = (points.len() / 12).max(1);
    for (i, (label, value)) in points.iter().enumerate() {
        let h = (H - BOTTOM - TOP) * (value / top).clamp(0.0, 1.0);
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        out.push_str(&format!(
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{h:.1}\">\
             <title>{}: {}{}</title></rect>",
            H - BOTTOM - h,
            escape(label),
            number(*value),
            escape(unit)
        ));
        if i % every == 0 {
            let short: String = label.chars().take(14).collect();
            out.push_str(&format!(
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + width / 2.0,
                H - BOTTOM + 16.0,
                escape(&short)
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// One line per series `(name, points)`, each point `(x, y)` with `x` in `0..=span` (e.g.
/// seconds into the last hour), on a y axis in `unit`; `x_label` names the x axis.
pub fn lines(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    span: f64,
    unit: &str,
    x_label: &str,
) -> String {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return format!("<p class=\"muted\">{}: nothing yet.</p>", escape(title));
    }
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let span = if span > 0.0 { span } else { 1.0 };
    let description = series
        .iter()
        .map(|(name, p)| {
            let last = p.last().map_or(0.0, |(_, y)| *y);
            format!("{name}: latest {}{unit}", number(last))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = open(title, &description);
    axis(&mut out, top, unit);
    for (i, (name, points)) in series.iter().enumerate() {
        let coords: Vec<String> = points
            .iter()
            .map(|(x, y)| {
                // Room on the right for the newest point's dot.
                let px = LEFT + (W - LEFT - 6.0) * (x / span).clamp(0.0, 1.0);
                let py = H - BOTTOM - (H - BOTTOM - TOP) * (y / top).clamp(0.0, 1.0);
                format!("{px:.1},{py:.1}")
            })
            .collect();
        out.push_str(&format!(
            "<polyline class=\"line s{}\" points=\"{}\"><title>{}</title></polyline>",
            i % 6,
            coords.join(" "),
            escape(name)
        ));
        // A lone sample draws no line: a dot shows it.
        if let [only] = coords.as_slice()
            && let Some((x, y)) = only.split_once(',')
        {
            out.push_str(&format!(
                "<circle class=\"dot s{}\" cx=\"{x}\" cy=\"{y}\" r=\"3\"><title>{}</title></circle>",
                i % 6,
                escape(name)
            ));
        }
    }
    out.push_str(&format!(
        "<text class=\"axis\" x=\"{W}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
        H - 4.0,
        escape(x_label)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_escape_their_labels_and_scale_to_a_round_top() {
        let svg = bars(
            "Storage",
            &[("<b>a&b</b>".into(), 30.0), ("c".into(), 70.0)],
            " MiB",
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("&lt;b&gt;a&amp;b&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains(">100 MiB<"), "a round top: {svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(bars("Empty", &[], "").contains("nothing yet"));
    }

    #[test]
    fn lines_draw_one_polyline_per_series() {
        let svg = lines(
            "CPU",
            &[
                ("job 1".into(), vec![(0.0, 10.0), (1800.0, 40.0)]),
                ("job 2".into(), vec![(3600.0, 5.0)]),
            ],
            3600.0,
            "%",
            "last hour",
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1, "job 2's lone sample");
        assert!(svg.contains("latest 40%"));
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
    }
}
