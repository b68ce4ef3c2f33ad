//! A small Markdown subset for the knowledge-base preview: headings, paragraphs, bullet
//! and numbered lists, fenced code, inline code, bold and italic. No raw HTML and no
//! links: every character of the source is escaped before any tag is added, so an article
//! can never put markup, scripts or URLs on the console's origin. Anything outside the
//! subset shows as its text, which is what the engineer's `fieldsync kb show` prints too.

use super::html::esc;

/// The rendered preview stops after this many source lines; the full text is in the form.
pub const PREVIEW_LINES_MAX: usize = 2_000;

#[derive(PartialEq)]
enum Block {
    None,
    Para,
    Bullets,
    Numbers,
    Code,
}

/// `**bold**`, `*italic*` and `` `code` `` inside one line. The text is escaped first;
/// the marks are ASCII, which escaping leaves alone, so tags only ever wrap escaped text.
fn inline(line: &str) -> String {
    let text = esc(line);
    let ticks = text.matches('`').count();
    // With an odd count the last backtick opens nothing: it shows as written.
    let paired = if ticks.is_multiple_of(2) {
        ticks + 1
    } else {
        ticks
    };
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i >= paired {
            out.push('`');
            out.push_str(&emphasis(part));
        } else if i % 2 == 1 {
            // Nothing inside a code span is emphasis.
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(&emphasis(part));
        }
    }
    out
}

fn emphasis(text: &str) -> String {
    let bold = wrap(text, 2, "strong");
    wrap(&bold, 1, "em")
}

/// Wrap the text between pairs of `*` runs exactly `run` long in `tag`; a run of another
/// length, an unpaired run, or a pair with nothing between shows as written.
fn wrap(text: &str, run: usize, tag: &str) -> String {
    let b = text.as_bytes();
    let mut marks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'*' {
            let len = b[i..].iter().take_while(|c| **c == b'*').count();
            if len == run {
                marks.push(i);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for pair in marks.chunks_exact(2) {
        let (open, close) = (pair[0], pair[1]);
        if close == open + run {
            continue;
        }
        out.push_str(&text[at..open]);
        out.push_str(&format!("<{tag}>{}</{tag}>", &text[open + run..close]));
        at = close + run;
    }
    out.push_str(&text[at..]);
    out
}

fn close(out: &mut String, block: &mut Block) {
    out.push_str(match block {
        Block::None => "",
        Block::Para => "</p>",
        Block::Bullets => "</ul>",
        Block::Numbers => "</ol>",
        Block::Code => "</code></pre>",
    });
    *block = Block::None;
}

/// The numbered-list item text of `1. text`, if the line is one.
fn numbered(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    line[digits..].strip_prefix(". ")
}

/// The preview's HTML. Safe to put in a page as it is: see the module comment.
pub fn render(src: &str) -> String {
    let mut out = String::new();
    let mut block = Block::None;
    for raw in src.lines().take(PREVIEW_LINES_MAX) {
        if block == Block::Code {
            if raw.trim_start().starts_with("```") {
                close(&mut out, &mut block);
            } else {
                out.push_str(&esc(raw));
                out.push('\n');
            }
            continue;
        }
        let line = raw.trim();
        if line.starts_with("```") {
            close(&mut out, &mut block);
            out.push_str("<pre><code>");
            block = Block::Code;
        } else if line.is_empty() {
            close(&mut out, &mut block);
        } else if let Some((level, text)) = heading(line) {
            close(&mut out, &mut block);
            out.push_str(&format!("<h{level}>{}</h{level}>", inline(text)));
        } else if let Some(item) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
            if block != Block::Bullets {
                close(&mut out, &mut block);
                out.push_str("<ul>");
                block = Block::Bullets;
            }
            out.push_str(&format!("<li>{}</li>", inline(item)));
        } else if let Some(item) = numbered(line) {
            if block != Block::Numbers {
                close(&mut out, &mut block);
                out.push_str("<ol>");
                block = Block::Numbers;
            }
            out.push_str(&format!("<li>{}</li>", inline(item)));
        } else {
            if block == Block::Para {
                out.push('\n');
            } else {
                close(&mut out, &mut block);
                out.push_str("<p>");
                block = Block::Para;
            }
            out.push_str(&inline(line));
        }
    }
    close(&mut out, &mut block);
    out
}

/// `# text` … `###### text`, shown one level below the page's own headings (h3–h6).
fn heading(line: &str) -> Option<(usize, &str)> {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let text = line[hashes..].strip_prefix(' ')?;
    Some(((hashes + 2).min(6), text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_renders() {
        let html = render(
            "# E42 pump\nCheck the **relay** and *flow* switch.\nThen `reset`.\n\n- one\n- two\n\n1. first\n2. second\n\n```\nlet x = <y>;\n```",
        );
        assert_eq!(
            html,
            "<h3>E42 pump</h3><p>Check the <strong>relay</strong> and <em>flow</em> switch.\nThen <code>reset</code>.</p><ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol><pre><code>let x = &lt;y&gt;;\n</code></pre>"
        );
    }

    #[test]
    fn markup_in_the_source_is_only_ever_text() {
        let html = render(
            "<script>alert(1)</script>\n# <img src=x onerror=alert(1)>\n- [x](javascript:alert(1)) \"q\" 'a' &amp;",
        );
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&quot;q&quot; &#39;a&#39; &amp;amp;"),
            "{html}"
        );
        assert!(!html.contains("href"), "{html}");
    }

    #[test]
    fn unpaired_marks_show_as_written() {
        assert_eq!(render("2 * 3 = 6"), "<p>2 * 3 = 6</p>");
        assert_eq!(render("a `b"), "<p>a `b</p>");
        assert_eq!(render("**a** b **"), "<p><strong>a</strong> b **</p>");
        assert_eq!(render("压缩机过热"), "<p>压缩机过热</p>");
    }
}
