//! Writing a figure: plotters draws it once as SVG; subscripts become `<tspan>`s; the PNG is
//! that SVG rasterized at 300 dpi by resvg with the bundled DejaVu Sans, so the two files
//! show the same text, laid out by a real text engine (kerning, subscripts) rather than by
//! plotters' bitmap text. Files are written through temporary names and renamed, so no
//! half-written figure is left behind.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{DPI, FONT_BYTES, pe, register_font};
use super::typeset::svg_subscripts;
use crate::error::{Error, Result};

/// The family the SVG names: the bundled font first, then any sans-serif.
const SVG_FAMILY: &str = "DejaVu Sans, sans-serif";

/// Draws `draw` as `<stem>.svg` and `<stem>.png` (300 dpi, pHYs set), `size` in pixels.
pub fn render_both(
    stem: &Path,
    size: (u32, u32),
    draw: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<()> {
    write_both(stem, size, &svg(size, draw)?)
}

/// Writes an SVG drawn by [`svg`] as `<stem>.svg` and, rasterized, as `<stem>.png`.
pub fn write_both(stem: &Path, size: (u32, u32), svg: &str) -> Result<()> {
    let png = rasterize(svg, size)?;
    write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    write_atomic(&stem.with_extension("png"), &png)
}

/// Draws `draw` as the text of an SVG document, `size` in pixels, its subscripts typeset and
/// its text in the bundled font's family: what the `.svg` file holds and the PNG shows.
pub fn svg(size: (u32, u32), draw: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    register_font();
    let mut raw = String::new();
    {
        let root = SVGBackend::with_string(&mut raw, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root)?;
        root.present().map_err(pe)?;
    }
    Ok(svg_subscripts(&raw).replace(
        &format!("font-family=\"{}\"", super::style::FONT),
        &format!("font-family=\"{SVG_FAMILY}\""),
    ))
}

/// The SVG as an RGB PNG on white with a 300-dpi pHYs chunk.
fn rasterize(svg: &str, size: (u32, u32)) -> Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    let opt = OPTIONS.get_or_init(|| {
        let mut opt = usvg::Options { font_family: "DejaVu Sans".into(), ..usvg::Options::default() };
        let db = opt.fontdb_mut();
        db.load_font_data(FONT_BYTES.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        opt
    });
    let tree = usvg::Tree::from_str(svg, opt).map_err(pe)?;
    let mut pixmap = tiny_skia::Pixmap::new(size.0, size.1)
        .ok_or_else(|| Error::report(format!("plotting: no {}×{} canvas", size.0, size.1)))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    // Opaque on white, so the RGBA premultiplied pixels are plain RGB.
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let per_metre = (DPI / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: per_metre,
            yppu: per_metre,
            unit: png::Unit::Meter,
        }));
        let mut w = enc.write_header().map_err(pe)?;
        w.write_image_data(&rgb).map_err(pe)?;
    }
    Ok(bytes)
}

/// Writes `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp =
        path.with_extension(format!("{}.part", path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
