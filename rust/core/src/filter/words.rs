//! The words the quality rules count: an English word splitter that follows the rules of spaCy's
//! tokenizer (which datatrove's filters use), written as plain byte-span scanning.
//!
//! Text is split at whitespace; each piece then loses its leading punctuation (quotes, brackets,
//! currency), its trailing punctuation (including a final `.` after a lowercase letter or digit,
//! `'s` and contractions such as `n't`), and is split inside at ellipses, hyphens between words and
//! `/`, `:` or `=` between a word and a letter. URLs and dotted abbreviations (`e.g.`, `U.S.`) stay
//! whole. Every token is a `(start, end)` byte span into the text.

use super::charsets::is_alphabetic;

/// Punctuation split off at either end of a piece (spaCy's punctuation, quote and bracket lists).
fn is_edge_punct(c: char) -> bool {
    matches!(
        c,
        ',' | ':'
            | ';'
            | '!'
            | '?'
            | '¿'
            | '¡'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
            | '_'
            | '#'
            | '*'
            | '&'
            | '…'
            | '\''
            | '"'
            | '”'
            | '“'
            | '`'
            | '‘'
            | '´'
            | '’'
            | '‚'
            | '„'
            | '»'
            | '«'
            | '。'
            | '？'
            | '！'
            | '，'
            | '、'
            | '；'
            | '：'
            | '～'
            | '·'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
    )
}

fn is_currency(c: char) -> bool {
    matches!(
        c,
        '$' | '£' | '€' | '¥' | '฿' | '₽' | '₹' | '₩' | '₪' | '₫' | '₺' | '₿'
    )
}

fn is_prefix_char(c: char) -> bool {
    is_edge_punct(c) || is_currency(c) || matches!(c, '§' | '%' | '=' | '—' | '–')
}

fn is_suffix_char(c: char) -> bool {
    is_edge_punct(c) || matches!(c, '—' | '–')
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '–' | '—' | '~')
}

/// Appends the word spans of `text` to `out` (cleared first).
pub fn split_words(text: &str, out: &mut Vec<(u32, u32)>) {
    out.clear();
    let mut scratch = PieceScratch::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let n = whitespace_len(text, i);
        if n > 0 {
            i += n;
            continue;
        }
        let start = i;
        while i < bytes.len() {
            // Most bytes are ASCII and not whitespace: one table test each.
            if !ASCII_SPACE_OR_HIGH[bytes[i] as usize] {
                i += 1;
            } else if whitespace_len(text, i) == 0 {
                i += next_char(text, i).len_utf8();
            } else {
                break;
            }
        }
        split_piece(text, start, i, out, &mut scratch);
    }
}

/// ASCII whitespace (as `char::is_whitespace` has it) and every non-ASCII lead or continuation
/// byte, which needs the full test.
static ASCII_SPACE_OR_HIGH: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b >= 0x80 || (b as u8 as char).is_whitespace();
        b += 1;
    }
    t
};

/// The byte length of the whitespace char at `i`, or 0 if it is not whitespace.
#[inline]
fn whitespace_len(text: &str, i: usize) -> usize {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        return usize::from(ASCII_SPACE_OR_HIGH[b as usize]);
    }
    let c = next_char(text, i);
    if c.is_whitespace() { c.len_utf8() } else { 0 }
}

#[inline]
fn next_char(text: &str, i: usize) -> char {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        b as char
    } else {
        text[i..].chars().next().expect("i is a char boundary")
    }
}

#[inline]
fn prev_char(text: &str, end: usize) -> char {
    text[..end].chars().next_back().expect("end > 0")
}

/// Buffers that the slow path reuses from piece to piece, allocated once per `split_words` call.
#[derive(Default)]
struct PieceScratch {
    /// The suffixes split off a piece, outermost first.
    suffixes: Vec<(u32, u32)>,
    /// The chars of a piece being split at its infixes, with their byte offsets.
    chars: Vec<(usize, char)>,
}

/// One whitespace-free piece `text[start..end]`, the way spaCy's tokenizer takes it apart:
/// special cases whole; otherwise one prefix and one suffix off per round until a special case or
/// nothing is left to strip; the core is a special case, a URL, or split at its infixes.
fn split_piece(
    text: &str,
    start: usize,
    end: usize,
    out: &mut Vec<(u32, u32)>,
    scratch: &mut PieceScratch,
) {
    // Most pieces are plain words: nothing to strip or split, and only short ones can be special
    // cases ("cannot", "youre").
    let piece = &text.as_bytes()[start..end];
    let ascii_letters = piece.iter().all(u8::is_ascii_alphabetic);
    if ascii_letters && (piece.len() > 7 || special(&text[start..end]).is_none()) {
        out.push((start as u32, end as u32));
        return;
    }
    // Letters of any script and ASCII digits, but not ASCII letters alone (hashes, versions,
    // "2022", Cyrillic or Greek words): every special case of such chars alone is ASCII letters,
    // and no prefix, suffix or infix rule applies, except a unit after the last digit ("5km").
    if !ascii_letters
        && text[start..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || is_alphabetic(c))
        && unit_suffix(&text[start..end]).is_none()
    {
        out.push((start as u32, end as u32));
        return;
    }
    if emit_special(text, start, end, out) {
        return;
    }
    let first = out.len();
    split_affixes(text, start, end, out, scratch);
    merge_specials(text, first, out);
}

/// spaCy's second pass: adjacent tokens that together spell a special case kept whole (an
/// emoticon split by the affix rules, `''`, `Dr.`) become one token again; longest first.
fn merge_specials(text: &str, first: usize, out: &mut Vec<(u32, u32)>) {
    if out.len() - first < 2 {
        return;
    }
    // Compacted in place: the token written at `w` is read from `i >= w` and later ones.
    let mut w = first;
    let mut i = first;
    while i < out.len() {
        let mut best = i;
        for j in (i + 1..out.len().min(i + 4)).rev() {
            let (a, b) = (out[i].0 as usize, out[j].1 as usize);
            // Specials kept whole are short, except dotted abbreviations ("U.S.A.").
            if (b - a <= 8 || text.as_bytes()[a + 1] == b'.')
                && special(&text[a..b]).is_some_and(|lens| lens[1] == 0)
            {
                best = j;
                break;
            }
        }
        out[w] = (out[i].0, out[best].1);
        w += 1;
        i = best + 1;
    }
    out.truncate(w);
}

fn split_affixes(
    text: &str,
    start: usize,
    end: usize,
    out: &mut Vec<(u32, u32)>,
    scratch: &mut PieceScratch,
) {
    let (mut s, mut e) = (start, end);
    let suffixes = &mut scratch.suffixes;
    suffixes.clear();
    while s < e {
        let cur = &text[s..e];
        if special(cur).is_some() {
            break;
        }
        let pre = prefix_len(cur);
        if let Some(p) = pre
            && s + p < e
            && special(&text[s + p..e]).is_some()
        {
            out.push((s as u32, (s + p) as u32));
            s += p;
            break;
        }
        let suf = suffix_len(&text[s + pre.unwrap_or(0)..e]);
        if let Some(q) = suf
            && e - q > s
            && special(&text[s..e - q]).is_some()
        {
            suffixes.push(((e - q) as u32, e as u32));
            e -= q;
            break;
        }
        match (pre, suf) {
            (Some(p), Some(q)) if p + q <= e - s => {
                out.push((s as u32, (s + p) as u32));
                suffixes.push(((e - q) as u32, e as u32));
                s += p;
                e -= q;
            }
            (Some(p), _) => {
                out.push((s as u32, (s + p) as u32));
                s += p;
            }
            (None, Some(q)) => {
                suffixes.push(((e - q) as u32, e as u32));
                e -= q;
            }
            (None, None) => break,
        }
    }
    if s < e && !emit_special(text, s, e, out) {
        if is_url(&text[s..e]) {
            out.push((s as u32, e as u32));
        } else {
            split_infixes(text, s, e, out, &mut scratch.chars);
        }
    }
    out.extend(scratch.suffixes.iter().rev());
}

/// Abbreviations that keep their period (spaCy's English exceptions).
const ABBREVIATIONS: [&str; 44] = [
    "Adm.", "Bros.", "co.", "Co.", "Corp.", "Dr.", "Gen.", "Gov.", "Inc.", "Jr.", "Ltd.", "Md.",
    "Messrs.", "Mo.", "Mont.", "Mr.", "Mrs.", "Ms.", "Prof.", "Rep.", "Rev.", "Sen.", "St.", "vs.",
    "Mt.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.", "Sep.", "Sept.", "Oct.", "Nov.",
    "Dec.", "Ala.", "Ariz.", "Calif.", "Fla.", "Ill.", "Mass.", "Wash.",
];

/// Emoticons and other pieces of punctuation that stay one token. A `match` on string literals
/// compiles to a switch on the length and then byte compares (3 % of the splitter's time against
/// a first-byte table and a list); this runs for every piece with punctuation and every
/// two-letter word.
#[rustfmt::skip] // one alternative per line would take 40 lines
fn is_whole(s: &str) -> bool {
    matches!(
        s,
        ":)" | ":-)" | ":))" | ":-))" | ":(" | ":-(" | ":((" | ":/" | ":-/" | ":p" | ":P" | ":-p"
            | ":-P" | ":D" | ":-D" | ";)" | ";-)" | ";D" | ":o" | ":O" | ":]" | ":-]" | "[:"
            | "):" | "(:" | "=)" | "(=" | "=(" | ":'(" | ":')" | "8)" | "8-)" | "xD" | "XD"
            | "<3" | "</3" | "''" | "-_-" | "^_^" | "and/or"
    )
}

/// Pronouns that spaCy also splits from a contraction written without its apostrophe ("youre").
const PRONOUNS: [&str; 7] = ["i", "you", "he", "she", "it", "we", "they"];
/// Look like pronoun + contraction but are words.
const NOT_CONTRACTIONS: [&str; 8] = [
    "ill", "its", "hell", "shell", "shed", "were", "well", "whore",
];

/// A special case, as the byte lengths of its tokens: `[whole, 0]` keeps it whole, `[a, b]`
/// splits it in two.
fn special(s: &str) -> Option<[usize; 2]> {
    let b = s.as_bytes();
    let (&first, &last) = (b.first()?, b.last()?);
    if last == b'.' {
        // "a.", "B.": a letter and its period.
        if b.len() == 2 && first.is_ascii_alphabetic() {
            return Some([2, 0]);
        }
        // "e.g.", "U.S.", "i.e.": letters each followed by a period, at least two of them.
        if b.len() >= 4
            && b.len().is_multiple_of(2)
            && b.chunks(2)
                .all(|p| p[0].is_ascii_alphabetic() && p[1] == b'.')
        {
            return Some([b.len(), 0]);
        }
        return (b.len() <= 7 && ABBREVIATIONS.contains(&s)).then_some([b.len(), 0]);
    }
    if b.len() > 14 {
        return None;
    }
    let letters = b.iter().all(u8::is_ascii_alphabetic);
    if b.len() <= 6 && (!letters || b.len() == 2) && is_whole(s) {
        return Some([b.len(), 0]);
    }
    if letters && s.eq_ignore_ascii_case("cannot") {
        return Some([3, 3]);
    }
    // '’' is the only special-case char whose UTF-8 starts with 0xE2.
    let apostrophe = b.contains(&b'\'') || (b.contains(&0xE2) && s.contains('’'));
    // "don't" → "do" "n't"; "can't" → "ca" "n't".
    if apostrophe {
        for nt in ["n't", "n’t", "N'T", "N’T"] {
            if let Some(base) = s.strip_suffix(nt)
                && !base.is_empty()
                && base.chars().all(is_alphabetic)
            {
                return Some([base.len(), nt.len()]);
            }
        }
    }
    // "I'm", "you're", "we'll", "they'd", "I've", and the same without the apostrophe.
    // Every contraction ends in "m", "re", "ve", "ll" or "d".
    if !(apostrophe || letters)
        || b.len() > 9
        || !b"iyhswtIYHSWT".contains(&first)
        || !matches!(last.to_ascii_lowercase(), b'm' | b'e' | b'l' | b'd')
    {
        return None;
    }
    for p in PRONOUNS {
        if b.len() <= p.len() || !b[..p.len()].eq_ignore_ascii_case(p.as_bytes()) {
            continue;
        }
        let rest = &s[p.len()..];
        let fits = match rest.trim_start_matches(['\'', '’']) {
            "m" => p == "i",
            "re" => matches!(p, "you" | "we" | "they"),
            "ve" | "ll" | "d" => true,
            _ => false,
        };
        if fits && !NOT_CONTRACTIONS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
            return Some([p.len(), rest.len()]);
        }
    }
    None
}

/// Push the tokens of `text[start..end]` if it is a special case.
fn emit_special(text: &str, start: usize, end: usize, out: &mut Vec<(u32, u32)>) -> bool {
    let Some(lens) = special(&text[start..end]) else {
        return false;
    };
    let mut at = start;
    for n in lens.into_iter().filter(|&n| n > 0) {
        out.push((at as u32, (at + n) as u32));
        at += n;
    }
    true
}

/// A URL or e-mail address as spaCy's `url_match` recognises one: optional `scheme://`, optional
/// `user@`, a host of dot-separated labels ending in a lowercase top-level domain of 2–63 letters
/// (or a public IPv4 address), optional `:port`, optional path after `/`, `?` or `#`.
fn is_url(s: &str) -> bool {
    // Both a domain and an IPv4 address hold a dot.
    if !s.contains('.') {
        return false;
    }
    let mut rest = s;
    if let Some(i) = s.as_bytes().windows(3).position(|w| w == b"://") {
        let scheme = &rest[..i];
        if scheme.chars().count() < 2
            || !scheme
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
        {
            return false;
        }
        rest = &rest[i + 3..];
    }
    // The host ends at the port or the path; a user part ends at the last '@' before it.
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..host_end].rfind('@') {
        rest = &rest[at + 1..];
    }
    let host_end = rest.find([':', '/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(host_end);
    if !(is_domain(host) || is_public_ipv4(host)) {
        return false;
    }
    let tail = if let Some(port) = tail.strip_prefix(':') {
        let digits = port.bytes().take_while(u8::is_ascii_digit).count();
        if !(2..=5).contains(&digits) {
            return false;
        }
        &port[digits..]
    } else {
        tail
    };
    tail.is_empty() || tail.starts_with(['/', '?', '#'])
}

fn is_domain(host: &str) -> bool {
    let Some((labels, tld)) = host.rsplit_once('.') else {
        return false;
    };
    let tld_len = tld.chars().count();
    if !(2..=63).contains(&tld_len) || !tld.chars().all(char::is_lowercase) {
        return false;
    }
    let label_char = |c: char| c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c);
    labels.split('.').all(|l| {
        let (Some(first), Some(last)) = (l.chars().next(), l.chars().next_back()) else {
            return false;
        };
        label_char(first)
            && label_char(last)
            && l.chars().count() <= 64
            && l.chars().all(|c| label_char(c) || c == '_' || c == '-')
    })
}

fn is_public_ipv4(host: &str) -> bool {
    if !host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return false;
    }
    let parts: Vec<u32> = host.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.len() != 4 || host.split('.').count() != 4 || parts.iter().any(|&p| p > 255) {
        return false;
    }
    let private = parts[0] == 10
        || parts[0] == 127
        || (parts[0] == 169 && parts[1] == 254)
        || (parts[0] == 192 && parts[1] == 168)
        || (parts[0] == 172 && (16..=31).contains(&parts[1]));
    !private && (1..=223).contains(&parts[0]) && parts[3] < 255
}

fn prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.starts_with(b"..") {
        return Some(b.iter().take_while(|&&x| x == b'.').count());
    }
    let c = s.chars().next()?;
    if is_prefix_char(c) {
        return Some(c.len_utf8());
    }
    // "+" opens a piece unless a number follows ("+3" stays whole).
    if c == '+' && !b.get(1).is_some_and(u8::is_ascii_digit) {
        return Some(1);
    }
    None
}

fn suffix_len(s: &str) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let n = b.len();
    if n >= 2 && b.ends_with(b"..") {
        return Some(b.iter().rev().take_while(|&&x| x == b'.').count());
    }
    // The possessive: "it's" → "it" "'s" (other contractions are special cases).
    if matches!(b[n - 1], b's' | b'S') {
        for suf in ["'s", "’s", "'S", "’S"] {
            if s.len() > suf.len() && s.ends_with(suf) {
                return Some(suf.len());
            }
        }
    }
    // Units and currencies after a number: "5km" → "5" "km".
    if let Some(q) = unit_suffix(s) {
        return Some(q);
    }
    let last = prev_char(s, n);
    if is_suffix_char(last) {
        return Some(last.len_utf8());
    }
    let body = &s[..n - last.len_utf8()];
    if body.is_empty() {
        return None;
    }
    let before = prev_char(body, body.len());
    match last {
        // A final period leaves a word ending in lowercase, a digit, "%" or punctuation; after
        // uppercase only when two capitals precede ("ABC." splits, "Mr." does not).
        '.' => {
            let splits = before.is_lowercase()
                || before.is_ascii_digit()
                || matches!(before, '%' | '²' | '-' | '+')
                || is_edge_punct(before)
                || (before.is_uppercase() && {
                    let b2 = &body[..body.len() - before.len_utf8()];
                    !b2.is_empty() && prev_char(b2, b2.len()).is_uppercase()
                });
            splits.then_some(1)
        }
        '+' | '%' if before.is_ascii_digit() => Some(1),
        c if is_currency(c) && before.is_ascii_digit() => Some(c.len_utf8()),
        _ => None,
    }
}

const UNITS: [&str; 46] = [
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²",
    "mm³", "ha", "µm", "nm", "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s",
    "km/h", "kmh", "mph", "hPa", "Pa", "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T",
    "G", "M",
];

/// A unit (or `K`, `%`) right after a digit: its byte length.
fn unit_suffix(s: &str) -> Option<usize> {
    // Units hold no digits, so the unit is everything after the last digit.
    let d = s.bytes().rposition(|b| b.is_ascii_digit())?;
    let unit = &s[d + 1..];
    // The longest unit is four bytes ("km/h", "mbar", "km²").
    if unit.len() > 4 {
        return None;
    }
    (!unit.is_empty() && (UNITS.contains(&unit) || unit == "K" || unit == "%"))
        .then_some(unit.len())
}

/// Split `text[start..end]` at its infixes: ellipses anywhere; hyphens, `/`, `:`, `<`, `>`, `=`
/// between a word and a letter; `,` between letters; `.` between a lowercase and an uppercase
/// letter; `+ - * ^` between digits.
fn split_infixes(
    text: &str,
    start: usize,
    end: usize,
    out: &mut Vec<(u32, u32)>,
    chars: &mut Vec<(usize, char)>,
) {
    let s = &text[start..end];
    chars.clear();
    chars.extend(s.char_indices());
    let mut piece = 0; // byte offset in s where the current token began
    let mut k = 0;
    while k < chars.len() {
        let (off, c) = chars[k];
        let prev = (k > 0).then(|| chars[k - 1].1);
        let infix_len = infix_at(chars, k, prev, c, s);
        if let Some(len) = infix_len {
            if off > piece {
                out.push(((start + piece) as u32, (start + off) as u32));
            }
            let stop = chars.get(k + len).map_or(s.len(), |&(o, _)| o);
            out.push(((start + off) as u32, (start + stop) as u32));
            piece = stop;
            k += len;
        } else {
            k += 1;
        }
    }
    if piece < s.len() {
        out.push(((start + piece) as u32, end as u32));
    }
}

/// Length in chars of the infix starting at `chars[k]`, if one does.
fn infix_at(
    chars: &[(usize, char)],
    k: usize,
    prev: Option<char>,
    c: char,
    _s: &str,
) -> Option<usize> {
    let next = chars.get(k + 1).map(|&(_, n)| n);
    if c == '…' {
        return Some(1);
    }
    if c == '.' && next == Some('.') {
        return Some(chars[k..].iter().take_while(|&&(_, x)| x == '.').count());
    }
    let prev = prev?;
    let next = next?;
    let word_before = is_alphabetic(prev) || prev.is_ascii_digit();
    if is_hyphen(c) {
        // "--" and "---" count as one hyphen.
        let run = chars[k..]
            .iter()
            .take_while(|&&(_, x)| x == '-')
            .count()
            .max(1);
        let after = chars.get(k + run).map(|&(_, n)| n);
        if word_before && after.is_some_and(is_alphabetic) {
            return Some(run);
        }
        if prev.is_ascii_digit()
            && c == '-'
            && after.is_some_and(|a| a.is_ascii_digit() || a == '-')
        {
            return Some(1);
        }
        return None;
    }
    match c {
        '/' | ':' | '<' | '>' | '=' if word_before && is_alphabetic(next) => Some(1),
        ',' if is_alphabetic(prev) && is_alphabetic(next) => Some(1),
        '.' if (prev.is_lowercase() || is_quote(prev))
            && (next.is_uppercase() || is_quote(next)) =>
        {
            Some(1)
        }
        '+' | '*' | '^' if prev.is_ascii_digit() && (next.is_ascii_digit() || next == '-') => {
            Some(1)
        }
        _ => None,
    }
}

fn is_quote(c: char) -> bool {
    matches!(c, '\'' | '"' | '”' | '“' | '`' | '‘' | '´' | '’')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        let mut spans = Vec::new();
        split_words(text, &mut spans);
        spans
            .iter()
            .map(|&(a, b)| &text[a as usize..b as usize])
            .collect()
    }

    #[test]
    fn punctuation_comes_off_the_ends() {
        assert_eq!(
            words("Hello, world! (It's \"fine\".)"),
            [
                "Hello", ",", "world", "!", "(", "It", "'s", "\"", "fine", "\"", ".", ")"
            ]
        );
    }

    #[test]
    fn contractions_and_periods() {
        assert_eq!(words("I don't know."), ["I", "do", "n't", "know", "."]);
        assert_eq!(
            words("Mr. Smith paid 5$ in the U.S."),
            ["Mr.", "Smith", "paid", "5", "$", "in", "the", "U.S."]
        );
        assert_eq!(
            words("ABC. e.g. 3.5 end..."),
            ["ABC", ".", "e.g.", "3.5", "end", "..."]
        );
    }

    #[test]
    fn infixes_split_inside() {
        assert_eq!(
            words("well-known and/or a--b"),
            ["well", "-", "known", "and/or", "a", "--", "b"]
        );
        assert_eq!(
            words("see https://x.org/a-b now"),
            ["see", "https://x.org/a-b", "now"]
        );
        assert_eq!(
            words("<https://gnu.org/x/>."),
            ["<", "https://gnu.org/x/", ">", "."]
        );
        assert_eq!(
            words("a@b.de http://srv/p"),
            ["a@b.de", "http://srv", "/", "p"]
        );
        assert_eq!(
            words("can't cannot I'm youre :) 5km"),
            [
                "ca", "n't", "can", "not", "I", "'m", "you", "re", ":)", "5", "km"
            ]
        );
        assert_eq!(words("wait…what"), ["wait", "…", "what"]);
        assert_eq!(words("1-2 3+4"), ["1", "-", "2", "3", "+", "4"]);
    }

    #[test]
    fn letters_and_digits_stay_whole_unless_a_unit_follows() {
        assert_eq!(
            words("4957e323 v2 2022 5km 5K 12% слово5 déjà Cannot youre"),
            [
                "4957e323",
                "v2",
                "2022",
                "5",
                "km",
                "5",
                "K",
                "12",
                "%",
                "слово5",
                "déjà",
                "Can",
                "not",
                "you",
                "re"
            ]
        );
    }

    #[test]
    fn whitespace_of_any_kind_separates() {
        assert_eq!(words("a\tb\nc\u{a0}d  "), ["a", "b", "c", "d"]);
        assert!(words(" \n ").is_empty());
    }
}
