//! (SIGNING) A receipt of sealed evidence as a PDF: A4, the built-in Helvetica (WinAnsi
//! encoding: Latin letters such as å ä ö é ü; anything else is printed as `?`), labels in
//! English, Swedish or Dutch. It shows what was signed (template title, version, text sha256),
//! by whom, the scopes accepted and declined, the validity, when, and the seal (record sha256,
//! key id, signature), where the keys are published and how to withdraw.
//!
//! It reads these keys of the record when present: `kind`, `person.pseudonym`, `guardian.name`
//! / `guardian.relation`, `template.title` / `.version` / `.text_sha256`, `scopes_accepted`,
//! `scopes_declined` (strings, or objects with `label` or `channel`), `face_matching.offered`
//! / `.accepted`, `valid_from`, `valid_until`, `signed_at` (else `sealed_at`), `seq`; the
//! record's canonical JSON is printed at the end.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use serde_json::Value;

use crate::error::Result;
use likeness_control_domain::evidence::Receipt;

/// Links printed on the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// Where the public keys are published (`<public_base_url>/api/v1/evidence/keys`).
    pub keys_url: Option<String>,
    /// The withdrawal link.
    pub withdraw_url: Option<String>,
}

struct Labels {
    title_signature: &'static str,
    title_withdrawal: &'static str,
    signed_by: &'static str,
    guardian: &'static str,
    agreement: &'static str,
    version: &'static str,
    text_sha256: &'static str,
    accepted: &'static str,
    declined: &'static str,
    face_matching: &'static str,
    yes: &'static str,
    no: &'static str,
    none: &'static str,
    valid: &'static str,
    until_withdrawn: &'static str,
    signed_at: &'static str,
    seal: &'static str,
    record_no: &'static str,
    record_sha256: &'static str,
    key_id: &'static str,
    signature: &'static str,
    verify: &'static str,
    verify_cli: &'static str,
    withdraw: &'static str,
    record: &'static str,
}

const EN: Labels = Labels {
    title_signature: "Receipt of your consent",
    title_withdrawal: "Receipt of your withdrawal",
    signed_by: "Signed by",
    guardian: "Guardian",
    agreement: "Agreement",
    version: "version",
    text_sha256: "Text (sha256)",
    accepted: "Accepted",
    declined: "Declined",
    face_matching: "Face matching",
    yes: "yes",
    no: "no",
    none: "none",
    valid: "Valid",
    until_withdrawn: "until withdrawn",
    signed_at: "Signed at",
    seal: "Seal",
    record_no: "Record no.",
    record_sha256: "Record (sha256)",
    key_id: "Key id",
    signature: "Signature (Ed25519)",
    verify: "Verify this receipt against the public keys at",
    verify_cli: "Verify offline: likeness-control verify-receipt receipt.json --keys <keys>",
    withdraw: "To withdraw your consent, open",
    record: "The sealed record (canonical JSON)",
};

const SV: Labels = Labels {
    title_signature: "Kvitto på ditt samtycke",
    title_withdrawal: "Kvitto på din återkallelse",
    signed_by: "Undertecknat av",
    guardian: "Vårdnadshavare",
    agreement: "Avtal",
    version: "version",
    text_sha256: "Text (sha256)",
    accepted: "Godkänt",
    declined: "Avböjt",
    face_matching: "Ansiktsmatchning",
    yes: "ja",
    no: "nej",
    none: "inget",
    valid: "Giltigt",
    until_withdrawn: "tills det återkallas",
    signed_at: "Undertecknat",
    seal: "Försegling",
    record_no: "Post nr",
    record_sha256: "Post (sha256)",
    key_id: "Nyckel-id",
    signature: "Signatur (Ed25519)",
    verify: "Kontrollera kvittot mot de publika nycklarna på",
    verify_cli: "Kontrollera offline: likeness-control verify-receipt receipt.json --keys <nycklar>",
    withdraw: "För att återkalla ditt samtycke, öppna",
    record: "Den förseglade posten (kanonisk JSON)",
};

const NL: Labels = Labels {
    title_signature: "Ontvangstbewijs van uw toestemming",
    title_withdrawal: "Ontvangstbewijs van uw intrekking",
    signed_by: "Ondertekend door",
    guardian: "Voogd",
    agreement: "Overeenkomst",
    version: "versie",
    text_sha256: "Tekst (sha256)",
    accepted: "Geaccepteerd",
    declined: "Geweigerd",
    face_matching: "Gezichtsherkenning",
    yes: "ja",
    no: "nee",
    none: "geen",
    valid: "Geldig",
    until_withdrawn: "tot intrekking",
    signed_at: "Ondertekend op",
    seal: "Zegel",
    record_no: "Record nr.",
    record_sha256: "Record (sha256)",
    key_id: "Sleutel-id",
    signature: "Handtekening (Ed25519)",
    verify: "Controleer dit ontvangstbewijs met de publieke sleutels op",
    verify_cli: "Offline controleren: likeness-control verify-receipt receipt.json --keys <sleutels>",
    withdraw: "Om uw toestemming in te trekken, open",
    record: "Het verzegelde record (canonieke JSON)",
};

fn labels(language: &str) -> &'static Labels {
    match language.get(..2).unwrap_or("") {
        "sv" => &SV,
        "nl" => &NL,
        _ => &EN,
    }
}

/// The WinAnsi (Windows-1252) byte of `c`, `?` when it has none.
pub fn win_ansi(c: char) -> u8 {
    let u = c as u32;
    match c {
        ' '..='~' => u as u8,
        '\u{a0}'..='\u{ff}' => u as u8,
        '\t' | '\n' | '\r' => b' ',
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => b'?',
    }
}

/// `s` in WinAnsi bytes.
pub fn encode(s: &str) -> Vec<u8> {
    s.chars().map(win_ansi).collect()
}

/// Helvetica's advance widths (1/1000 em) of ASCII 32..=126.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

fn char_width(b: u8) -> f32 {
    let w = match b {
        32..=126 => HELVETICA[(b - 32) as usize],
        _ => 600,
    };
    f32::from(w) / 1000.0
}

fn width(bytes: &[u8], size: f32) -> f32 {
    bytes.iter().map(|b| char_width(*b)).sum::<f32>() * size
}

/// Breaks `text` (WinAnsi bytes) into lines of at most `max` points at `size`: at spaces, and
/// inside words longer than a line (hashes, signatures, links).
fn wrap(text: &[u8], size: f32, max: f32) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in text.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
        let sep = if line.is_empty() {
            0.0
        } else {
            char_width(b' ') * size
        };
        if width(&line, size) + sep + width(word, size) <= max {
            if !line.is_empty() {
                line.push(b' ');
            }
            line.extend_from_slice(word);
            continue;
        }
        if width(word, size) <= max {
            // It fits on a line of its own.
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line.extend_from_slice(word);
            continue;
        }
        // Longer than a line (a hash, a link, JSON): fill this line, then break it anywhere.
        if !line.is_empty() {
            line.push(b' ');
        }
        for &b in word {
            if !line.is_empty() && width(&line, size) + char_width(b) * size > max {
                lines.push(std::mem::take(&mut line));
            }
            line.push(b);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const LABEL_W: f32 = 130.0;
/// Most characters of the record printed (the JSON receipt holds all of it).
const MAX_RECORD_CHARS: usize = 8_000;

struct Layout {
    pages: Vec<Content>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Self {
            pages: vec![Content::new()],
            y: PAGE_H - MARGIN,
        }
    }

    fn page(&mut self) -> &mut Content {
        if self.pages.is_empty() {
            self.pages.push(Content::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn room(&mut self, height: f32) {
        if self.y - height < MARGIN {
            self.pages.push(Content::new());
            self.y = PAGE_H - MARGIN;
        }
    }

    fn text_at(&mut self, font: &[u8], size: f32, x: f32, bytes: &[u8]) {
        let y = self.y;
        let c = self.page();
        c.begin_text();
        c.set_font(Name(font), size);
        c.next_line(x, y);
        c.show(Str(bytes));
        c.end_text();
    }

    fn heading(&mut self, text: &str, size: f32) {
        let max = PAGE_W - 2.0 * MARGIN;
        for l in wrap(&encode(text), size, max) {
            self.room(size * 1.3);
            self.y -= size;
            self.text_at(b"F2", size, MARGIN, &l);
            self.y -= size * 0.3;
        }
        self.y -= size * 0.4;
    }

    fn row(&mut self, label: &str, value: &str) {
        let size = 10.0;
        let max = PAGE_W - 2.0 * MARGIN - LABEL_W;
        let lines = wrap(&encode(value), size, max);
        for (i, l) in lines.iter().enumerate() {
            self.room(size * 1.35);
            self.y -= size;
            if i == 0 {
                self.text_at(b"F2", size, MARGIN, &encode(label));
            }
            self.text_at(b"F1", size, MARGIN + LABEL_W, l);
            self.y -= size * 0.35;
        }
        self.y -= 2.0;
    }

    fn para(&mut self, text: &str, size: f32, font: &[u8]) {
        let max = PAGE_W - 2.0 * MARGIN;
        for l in wrap(&encode(text), size, max) {
            self.room(size * 1.3);
            self.y -= size;
            self.text_at(font, size, MARGIN, &l);
            self.y -= size * 0.3;
        }
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn text_of(record: &Value, path: &[&str]) -> Option<String> {
    str_at(record, path).map(show)
}

fn scopes(record: &Value, key: &str, none: &str) -> String {
    let list: Vec<String> = match record.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::Object(_) => text_of(i, &["label"])
                    .or_else(|| text_of(i, &["channel"]))
                    .unwrap_or_else(|| i.to_string()),
                other => show(other),
            })
            .collect(),
        _ => Vec::new(),
    };
    if list.is_empty() {
        none.to_string()
    } else {
        list.join(", ")
    }
}

/// Renders the receipt as a PDF with labels in `language` (`en`, `sv`, `nl`; else English).
pub fn render(receipt: &Receipt, language: &str, links: &Links) -> Result<Vec<u8>> {
    let t = labels(language);
    let r = &receipt.record;
    let mut l = Layout::new();
    let withdrawal = text_of(r, &["kind"]).as_deref() == Some("withdrawal");
    l.heading(
        if withdrawal {
            t.title_withdrawal
        } else {
            t.title_signature
        },
        18.0,
    );
    if let Some(p) =
        text_of(r, &["person", "pseudonym"]).or_else(|| text_of(r, &["person", "name"]))
    {
        l.row(t.signed_by, &p);
    }
    if let Some(g) = text_of(r, &["guardian", "name"]) {
        let g = match text_of(r, &["guardian", "relation"]) {
            Some(rel) => format!("{g} ({rel})"),
            None => g,
        };
        l.row(t.guardian, &g);
    }
    if let Some(title) = text_of(r, &["template", "title"]) {
        let v = match text_of(r, &["template", "version"]) {
            Some(v) => format!("{title}, {} {v}", t.version),
            None => title,
        };
        l.row(t.agreement, &v);
    }
    if let Some(h) = text_of(r, &["template", "text_sha256"]) {
        l.row(t.text_sha256, &h);
    }
    if !withdrawal || r.get("scopes_accepted").is_some() {
        l.row(t.accepted, &scopes(r, "scopes_accepted", t.none));
        l.row(t.declined, &scopes(r, "scopes_declined", t.none));
    }
    if str_at(r, &["face_matching", "offered"]).and_then(Value::as_bool) == Some(true) {
        let yes = str_at(r, &["face_matching", "accepted"]).and_then(Value::as_bool) == Some(true);
        l.row(t.face_matching, if yes { t.yes } else { t.no });
    }
    if let Some(from) = text_of(r, &["valid_from"]) {
        let until = text_of(r, &["valid_until"]).unwrap_or_else(|| t.until_withdrawn.to_string());
        l.row(t.valid, &format!("{from} - {until}"));
    }
    if let Some(at) = text_of(r, &["signed_at"])
        .or_else(|| text_of(r, &["withdrawn_at"]))
        .or_else(|| text_of(r, &["sealed_at"]))
    {
        l.row(t.signed_at, &at);
    }
    l.gap(10.0);
    l.heading(t.seal, 13.0);
    if let Some(seq) = text_of(r, &["seq"]) {
        l.row(t.record_no, &seq);
    }
    l.row(t.record_sha256, &receipt.record_sha256);
    l.row(t.key_id, &receipt.key_id);
    l.row(t.signature, &receipt.signature);
    l.gap(8.0);
    if let Some(u) = &links.keys_url {
        l.para(&format!("{} {u}", t.verify), 10.0, b"F1");
    }
    l.para(t.verify_cli, 9.0, b"F1");
    if let Some(u) = &links.withdraw_url {
        l.gap(6.0);
        l.para(&format!("{} {u}", t.withdraw), 10.0, b"F2");
    }
    l.gap(12.0);
    l.para(t.record, 9.0, b"F2");
    let canonical = likeness_control_domain::canonical::to_canonical_string(r);
    let shown: String = if canonical.chars().count() > MAX_RECORD_CHARS {
        let mut s: String = canonical.chars().take(MAX_RECORD_CHARS).collect();
        s.push_str(" [...]");
        s
    } else {
        canonical
    };
    l.para(&shown, 7.0, b"F1");
    Ok(write_pdf(l.pages, language))
}

fn write_pdf(pages: Vec<Content>, language: &str) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first = 6;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first + 2 * i as i32))
        .collect();
    let lang = language
        .get(..2)
        .filter(|l| matches!(*l, "sv" | "nl"))
        .unwrap_or("en");
    pdf.catalog(catalog).pages(tree).lang(TextStr(lang));
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(page_ids.len() as i32);
    pdf.document_info(info)
        .title(TextStr("Likeness receipt"))
        .producer(TextStr("Likeness"));
    for (i, content) in pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        let mut res = page.resources();
        let mut fonts = res.fonts();
        fonts.pair(Name(b"F1"), regular);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        res.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_ansi_keeps_latin_letters() {
        assert_eq!(
            encode("åäö é ü €"),
            vec![0xe5, 0xe4, 0xf6, b' ', 0xe9, b' ', 0xfc, b' ', 0x80]
        );
        assert_eq!(encode("ł中"), b"??".to_vec());
    }

    #[test]
    fn wrap_breaks_long_words() {
        let h = "a".repeat(200);
        let lines = wrap(h.as_bytes(), 10.0, 100.0);
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| width(l, 10.0) <= 100.0));
    }
}
