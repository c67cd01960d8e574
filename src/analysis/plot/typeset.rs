//! Subscripts in figure text. Labels mark a subscript with two private-use characters
//! ([`sub`]); plotters writes them into the SVG's text as they are, and [`svg_subscripts`]
//! turns each into a smaller, lowered `<tspan>`, which browsers and the PNG rasterizer both
//! lay out with the text's own font. Text never shows a raw `r_a`.

/// Opens a subscript in label text.
pub const SUB_OPEN: char = '\u{E000}';
/// Closes a subscript.
pub const SUB_CLOSE: char = '\u{E001}';

/// Subscript size and drop, as fractions of the surrounding font size.
const SUB_SIZE: f64 = 0.72;
const SUB_DROP: f64 = 0.22;

/// `s` as a subscript.
pub fn sub(s: &str) -> String {
    format!("{SUB_OPEN}{s}{SUB_CLOSE}")
}

/// Typesets the pair notation of prose (captions, labels): `r_a`, `r_b`, `r*_a`, `r_w`, … (an
/// `r` or `r*` at a word start, `_`, one letter ending the word) get a subscript. Anything else
/// with an underscore (a param value such as `ranked_path`) is left alone.
pub fn typeset(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < c.len() {
        let word_start = i == 0 || !c[i - 1].is_alphanumeric();
        if c[i] == 'r' && word_start {
            let star = usize::from(c.get(i + 1) == Some(&'*'));
            let (u, letter, after) = (i + 1 + star, i + 2 + star, i + 3 + star);
            if c.get(u) == Some(&'_')
                && c.get(letter).is_some_and(|l| l.is_ascii_lowercase())
                && !c.get(after).is_some_and(|n| n.is_alphanumeric() || *n == '_')
            {
                out.push('r');
                if star == 1 {
                    out.push('*');
                }
                out.push_str(&sub(&c[letter].to_string()));
                i = after;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// The text in ASCII subscript notation (`r_a`), for measuring and for plain-text records
/// such as the sidecar JSON.
pub fn plain(s: &str) -> String {
    s.replace(SUB_OPEN, "_").replace(SUB_CLOSE, "")
}

/// Rewrites each marked subscript in the `<text>` elements of an SVG as
/// `<tspan font-size dy>…</tspan>` followed by a `<tspan>` that climbs back to the baseline,
/// sized from the element's own `font-size`.
pub fn svg_subscripts(svg: &str) -> String {
    if !svg.contains(SUB_OPEN) {
        return svg.to_string();
    }
    let mut out = String::with_capacity(svg.len() + 256);
    for piece in svg.split_inclusive("</text>") {
        if !piece.contains(SUB_OPEN) {
            out.push_str(piece);
            continue;
        }
        let body = piece.strip_suffix("</text>").unwrap_or(piece);
        let size = font_size(body).unwrap_or(20.0);
        let mut open = false;
        for ch in body.chars() {
            match ch {
                SUB_OPEN => {
                    if open {
                        out.push_str("</tspan>");
                        open = false;
                    }
                    out.push_str(&format!(
                        r#"<tspan font-size="{:.2}" dy="{:.2}">"#,
                        size * SUB_SIZE,
                        size * SUB_DROP
                    ));
                }
                SUB_CLOSE => {
                    out.push_str(&format!(r#"</tspan><tspan dy="{:.2}">"#, -size * SUB_DROP));
                    open = true;
                }
                _ => out.push(ch),
            }
        }
        if open {
            out.push_str("</tspan>");
        }
        if piece.ends_with("</text>") {
            out.push_str("</text>");
        }
    }
    out
}

/// The `font-size` attribute of the last `<text` element opened in `s`.
fn font_size(s: &str) -> Option<f64> {
    let tag = &s[s.rfind("<text")?..];
    let at = tag.find("font-size=\"")? + "font-size=\"".len();
    tag[at..].split('"').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn case(input: &str, expected: &str) {
        assert_eq!(
            typeset(input),
            expected.replace('{', &SUB_OPEN.to_string()).replace('}', &SUB_CLOSE.to_string())
        );
    }

    #[test]
    fn pair_notation_gets_subscripts_and_nothing_else() {
        case("mean |r_a + r_b|", "mean |r{a} + r{b}|");
        case("−log σ(r_a − r_b)", "−log σ(r{a} − r{b})");
        case("r*_a − r*_b", "r*{a} − r*{b}");
        case("graph = ranked_path", "graph = ranked_path");
        case("for_all r_ab x_a", "for_all r_ab x_a");
        case("pair_sum_abs_mean", "pair_sum_abs_mean");
    }

    #[test]
    fn svg_text_gets_tspans_sized_from_its_font() {
        let svg = format!(
            r#"<svg><text x="1" font-size="10">r{}a{} − r{}b{}</text><text font-size="8">plain</text></svg>"#,
            SUB_OPEN, SUB_CLOSE, SUB_OPEN, SUB_CLOSE
        );
        let out = svg_subscripts(&svg);
        assert_eq!(
            out,
            concat!(
                r#"<svg><text x="1" font-size="10">r<tspan font-size="7.20" dy="2.20">a</tspan><tspan dy="-2.20"> − r"#,
                r#"</tspan><tspan font-size="7.20" dy="2.20">b</tspan><tspan dy="-2.20"></tspan></text>"#,
                r#"<text font-size="8">plain</text></svg>"#
            )
        );
        assert_eq!(plain(&typeset("mean |r_a + r*_b|")), "mean |r_a + r*_b|");
    }
}
