//! A figure's legend: one strip above its panels, entries laid out left to right and wrapped,
//! so that no legend covers data. Each swatch draws its entry the way the panels do (solid,
//! dashed or dotted line, a marker, a band, a histogram patch).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{BAND_EDGE, BAND_FILL, FONT, TICK_PX, pe};
use super::typeset::plain;
use crate::error::Result;

/// How a line is stroked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Dash {
    /// Dash length and gap in pixels (`None`: solid).
    pub fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((18, 12)),
            Dash::Dotted => Some((5, 9)),
        }
    }
}

/// What an entry's sample looks like.
#[derive(Clone, Copy, Debug)]
pub enum Swatch {
    /// A line, with a marker on it and a shaded band behind it when set.
    Line { color: RGBColor, dash: Dash, marker: bool, band: bool },
    /// A filled patch (histogram bars).
    Patch(RGBColor),
}

/// One legend entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub swatch: Swatch,
    /// Label text (subscripts marked).
    pub label: String,
}

/// Width of a swatch and the gaps after it and after an entry, in pixels.
const SWATCH_PX: i32 = 62;
const LABEL_GAP_PX: i32 = 14;
const ENTRY_GAP_PX: i32 = 44;
/// Height of one legend row.
pub const ROW_PX: f64 = TICK_PX * 1.7;

fn label_width(label: &str) -> i32 {
    let font: FontDesc = (FONT, TICK_PX).into_font();
    font.box_size(&plain(label))
        .map(|(w, _)| w as i32)
        .unwrap_or((label.chars().count() as f64 * TICK_PX * 0.55) as i32)
}

/// The entries of each row, laid out in `width` pixels from a left margin of `left`.
pub fn rows(entries: &[Entry], width: u32, left: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut x = left;
    for (i, e) in entries.iter().enumerate() {
        let w = SWATCH_PX + LABEL_GAP_PX + label_width(&e.label);
        if rows.is_empty() || (x + w > width as i32 && x > left) {
            rows.push(Vec::new());
            x = left;
        }
        rows.last_mut().expect("a row").push(i);
        x += w + ENTRY_GAP_PX;
    }
    rows
}

/// Draws the legend rows into `area` (its height: `rows.len()` × [`ROW_PX`]).
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    rows: &[Vec<usize>],
    left: i32,
) -> Result<()> {
    let font: TextStyle = (FONT, TICK_PX).into_font().into();
    for (r, row) in rows.iter().enumerate() {
        let y = (ROW_PX * (r as f64 + 0.5)) as i32;
        let mut x = left;
        for &i in row {
            let e = &entries[i];
            swatch(area, e.swatch, x, y)?;
            let tx = x + SWATCH_PX + LABEL_GAP_PX;
            area.draw(&Text::new(e.label.clone(), (tx, y), font.pos(Pos::new(HPos::Left, VPos::Center))))
                .map_err(pe)?;
            x = tx + label_width(&e.label) + ENTRY_GAP_PX;
        }
    }
    Ok(())
}

fn swatch<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: Swatch, x: i32, y: i32) -> Result<()> {
    match s {
        Swatch::Patch(c) => {
            area.draw(&Rectangle::new([(x + 8, y - 12), (x + SWATCH_PX - 8, y + 12)], c.mix(0.55).filled()))
                .map_err(pe)?;
        }
        Swatch::Line { color, dash, marker, band } => {
            if band {
                // As a panel draws a band: a light fill between edges of the line's colour.
                area.draw(&Rectangle::new(
                    [(x, y - 13), (x + SWATCH_PX, y + 13)],
                    color.mix(BAND_FILL).filled(),
                ))
                .map_err(pe)?;
                for e in [y - 13, y + 13] {
                    area.draw(&PathElement::new(
                        vec![(x, e), (x + SWATCH_PX, e)],
                        color.mix(BAND_EDGE).stroke_width(2),
                    ))
                    .map_err(pe)?;
                }
            }
            let style = color.stroke_width(5);
            match dash.pattern() {
                None => area.draw(&PathElement::new(vec![(x, y), (x + SWATCH_PX, y)], style)).map_err(pe)?,
                Some((on, off)) => {
                    let mut a = x;
                    while a < x + SWATCH_PX {
                        let b = (a + on as i32).min(x + SWATCH_PX);
                        area.draw(&PathElement::new(vec![(a, y), (b, y)], style)).map_err(pe)?;
                        a = b + off as i32;
                    }
                }
            }
            if marker {
                area.draw(&Circle::new((x + SWATCH_PX / 2, y), 7, color.filled())).map_err(pe)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(label: &str) -> Entry {
        Entry {
            swatch: Swatch::Line { color: BLACK, dash: Dash::Solid, marker: false, band: false },
            label: label.into(),
        }
    }

    #[test]
    fn entries_wrap_into_rows_that_fit() {
        super::super::style::register_font();
        let entries: Vec<Entry> = (0..6).map(|i| entry(&format!("λ = 0.00{i} (n=5)"))).collect();
        let one = label_width(&entries[0].label) + SWATCH_PX + LABEL_GAP_PX;
        // Room for exactly two entries a row.
        let width = (2 * one + ENTRY_GAP_PX + 10) as u32;
        assert_eq!(rows(&entries, width, 0), [vec![0, 1], vec![2, 3], vec![4, 5]]);
        assert_eq!(rows(&entries, 100_000, 0), [vec![0, 1, 2, 3, 4, 5]]);
        // An entry wider than the figure still gets a row of its own.
        assert_eq!(rows(&entries[..2], 10, 0), [vec![0], vec![1]]);
    }
}
