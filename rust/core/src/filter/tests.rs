//! Each rule on hand-made documents just inside and just outside its threshold.

use super::*;

fn only(family: &str) -> FilterConfig {
    let mut c = FilterConfig::default();
    c.gopher_quality.enabled = family == "gopher_quality";
    c.gopher_repetition.enabled = family == "gopher_repetition";
    c.c4.enabled = family == "c4";
    c.fineweb.enabled = family == "fineweb";
    c
}

fn fails(cfg: &FilterConfig, text: &str, rule: &str) -> bool {
    let o = cfg.evaluate(text, &mut Scratch::default());
    assert_eq!(
        o.stats.len(),
        cfg.stat_names().len(),
        "one value per stat name"
    );
    o.failed.iter().any(|f| f == rule)
}

/// `n` distinct five-letter words.
fn words(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let b = |k: usize| (b'a' + ((i / 26usize.pow(k as u32)) % 26) as u8) as char;
            format!("w{}{}{}{}", b(0), b(1), b(2), b(3))
        })
        .collect()
}

#[test]
fn gopher_word_count_and_length() {
    let c = only("gopher_quality");
    assert!(!fails(&c, &words(50).join(" "), "gopher_short_doc"));
    assert!(fails(&c, &words(49).join(" "), "gopher_short_doc"));
    // Punctuation tokens are not words.
    assert!(fails(
        &c,
        &(words(49).join(" ") + " ... !"),
        "gopher_short_doc"
    ));
    let mut w: Vec<String> = (0..50).map(|_| "abc".to_string()).collect();
    assert!(!fails(&c, &w.join(" "), "gopher_short_words"));
    w[0] = "ab".into();
    assert!(fails(&c, &w.join(" "), "gopher_short_words"));
    let mut w: Vec<String> = (0..50).map(|_| "abcdefghij".to_string()).collect();
    assert!(!fails(&c, &w.join(" "), "gopher_long_words"));
    w[0] = "abcdefghijk".into();
    assert!(fails(&c, &w.join(" "), "gopher_long_words"));
}

#[test]
fn gopher_symbols_bullets_ellipsis_lines() {
    let c = only("gopher_quality");
    // 90 words + 10 "#tag" (two tokens each): 10 / 110 ≤ 0.1; with 12: 12 / 114 > 0.1.
    let doc = |hashes: usize| {
        let mut w = words(90);
        w.extend((0..hashes).map(|_| "#tag".to_string()));
        w.join(" ")
    };
    assert!(!fails(&c, &doc(10), "gopher_hashes"));
    assert!(fails(&c, &doc(12), "gopher_hashes"));
    let lines = |bullets: usize, ellipses: usize| {
        (0..10)
            .map(|i| {
                let mut l = format!("line {} with some words", words(10)[i]);
                if i < bullets {
                    l.insert_str(0, "  - ");
                }
                if i < ellipses {
                    l.push_str("...");
                }
                l
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!fails(&c, &lines(9, 0), "gopher_bullet_lines"));
    assert!(fails(&c, &lines(10, 0), "gopher_bullet_lines"));
    assert!(!fails(&c, &lines(0, 3), "gopher_ellipsis_lines"));
    assert!(fails(&c, &lines(0, 4), "gopher_ellipsis_lines"));
}

#[test]
fn gopher_alpha_and_stop_words() {
    let c = only("gopher_quality");
    let doc = |alpha: usize, numbers: usize| {
        let mut w = words(alpha);
        w.extend((0..numbers).map(|i| format!("{}", 1000 + i)));
        w.join(" ")
    };
    assert!(!fails(&c, &doc(80, 20), "gopher_alpha_words"));
    assert!(fails(&c, &doc(79, 21), "gopher_alpha_words"));
    let base = words(60).join(" ");
    assert!(!fails(&c, &format!("{base} the and"), "gopher_stop_words"));
    assert!(fails(&c, &format!("{base} the"), "gopher_stop_words"));
    // Case matters, as in the reference.
    assert!(fails(&c, &format!("{base} The And"), "gopher_stop_words"));
}

#[test]
fn gopher_duplicate_lines_and_paragraphs() {
    let c = only("gopher_repetition");
    let w = words(10);
    // 10 lines of equal length, `dups` of them repeating the first.
    let doc = |dups: usize, sep: &str| {
        (0..10)
            .map(|i| {
                if i > 0 && i <= dups {
                    w[0].clone()
                } else {
                    w[i].clone()
                }
            })
            .collect::<Vec<_>>()
            .join(sep)
    };
    assert!(!fails(&c, &doc(3, "\n"), "gopher_dup_line"));
    assert!(fails(&c, &doc(4, "\n"), "gopher_dup_line"));
    assert!(!fails(&c, &doc(3, "\n\n"), "gopher_dup_para"));
    assert!(fails(&c, &doc(4, "\n\n"), "gopher_dup_para"));
    // Characters: 2 repeated lines of 5 chars in 10 lines of 5 chars + 9 newlines = 59 chars:
    // 10 / 59 ≤ 0.2; 3 → 15 / 59 > 0.2.
    assert!(!fails(&c, &doc(2, "\n"), "gopher_dup_line_chars"));
    assert!(fails(&c, &doc(3, "\n"), "gopher_dup_line_chars"));
}

#[test]
fn gopher_ngram_repetition() {
    let c = only("gopher_repetition");
    // "ab cd" (5 chars) `k` times among distinct 5-char words: (5 + 1 + 5) × k / len.
    let doc = |k: usize, filler: usize| {
        let mut w: Vec<String> = Vec::new();
        for _ in 0..k {
            w.push("ab cd".into());
        }
        w.extend(words(filler));
        w.join(" ")
    };
    // k = 4: 4 × 5 = 20 chars of "ab cd" n-gram... the top 2-gram is "ab cd" with count 4,
    // 5 chars × 4 = 20 over the text's length.
    let t = doc(4, 14);
    let o = c.evaluate(&t, &mut Scratch::default());
    let names = c.stat_names();
    let top2 = o.stats[names
        .iter()
        .position(|n| n == "gopher_top_2_gram_char_frac")
        .unwrap()];
    assert!((top2 - 20.0 / t.chars().count() as f64).abs() < 1e-12);
    // Move across 0.2 by changing the filler.
    let len = |k: usize, f: usize| doc(k, f).chars().count() as f64;
    assert!(20.0 / len(4, 14) <= 0.2 && !fails(&c, &doc(4, 14), "gopher_top_2_gram"));
    assert!(20.0 / len(4, 12) > 0.2 && fails(&c, &doc(4, 12), "gopher_top_2_gram"));
    // A repeated 5-gram: the second copy's characters (without spaces) count.
    let five = words(5).join(" ");
    let rest = words(40)[5..].join(" ");
    let t = format!("{five} {rest} {five}");
    let o = c.evaluate(&t, &mut Scratch::default());
    let dup5 = o.stats[names
        .iter()
        .position(|n| n == "gopher_dup_5_gram_char_frac")
        .unwrap()];
    assert!((dup5 - 25.0 / t.chars().count() as f64).abs() < 1e-12);
}

#[test]
fn c4_line_rules_remove_and_record() {
    let c = only("c4");
    let text = "A good line that ends well.\nno punctuation here\nTwo words.\n\
                Please enable JavaScript to view this.\nThis site uses cookies for you.\n\
                Cited claim goes here.[3] Then more text follows!";
    let o = c.evaluate(text, &mut Scratch::default());
    assert_eq!(
        o.text.as_deref(),
        Some("A good line that ends well.\nCited claim goes here. Then more text follows!")
    );
    let reasons: Vec<&str> = o.removed.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        ["no_terminal_punct", "too_few_words", "javascript", "policy"]
    );
    assert_eq!(o.removed[0].line, 2);
    // Three sentences left: fewer than 5.
    assert_eq!(o.failed, ["c4_too_few_sentences"]);
}

#[test]
fn c4_sentence_threshold_and_document_rules() {
    let c = only("c4");
    let five = "One is here. Two is here. Three is here. Four is here. Five is here.";
    let four = "One is here. Two is here. Three is here. Four is here.";
    assert!(!fails(&c, five, "c4_too_few_sentences"));
    assert!(fails(&c, four, "c4_too_few_sentences"));
    assert!(fails(
        &c,
        &format!("{five}\nLorem ipsum dolor sit amet."),
        "c4_lorem_ipsum"
    ));
    assert!(fails(
        &c,
        &format!("{five}\nThe map is {{a: 1}} here."),
        "c4_curly_bracket"
    ));
    // A removed line does not count against the document.
    assert!(!fails(
        &c,
        &format!("{five}\nlorem ipsum"),
        "c4_lorem_ipsum"
    ));
}

#[test]
fn fineweb_rules() {
    let c = only("fineweb");
    let long = "this line is long enough to not be short at all";
    // 100 lines, 12 ending in a period: 0.12 passes, 11 fails.
    let doc = |punct: usize| {
        (0..100)
            .map(|i| {
                format!(
                    "{long} {}{}",
                    words(100)[i],
                    if i < punct { "." } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!fails(&c, &doc(12), "fineweb_line_punct"));
    assert!(fails(&c, &doc(11), "fineweb_line_punct"));
    assert!(fails(&c, "", "fineweb_empty"));
    // Short lines: 67 of 100 pass (0.67), 68 fail.
    let doc = |short: usize| {
        (0..100)
            .map(|i| {
                if i < short {
                    format!("{}.", words(100)[i])
                } else {
                    format!("{long} {}.", words(100)[i])
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!fails(&c, &doc(67), "fineweb_short_lines"));
    assert!(fails(&c, &doc(68), "fineweb_short_lines"));
    // Newlines per word: 30 newlines per 100 words passes, 31 fails.
    let doc = |newlines: usize| {
        let w = words(100);
        let mut t = String::new();
        for (i, x) in w.iter().enumerate() {
            t.push_str(x);
            t.push(if i < newlines { '\n' } else { ' ' });
        }
        t
    };
    assert!(!fails(&c, &doc(30), "fineweb_list_ratio"));
    assert!(fails(&c, &doc(31), "fineweb_list_ratio"));
}

#[test]
fn switched_off_rules_never_fail() {
    let mut c = FilterConfig::default();
    c.gopher_quality.min_doc_words = None;
    c.c4.min_num_sentences = None;
    let o = c.evaluate("tiny", &mut Scratch::default());
    assert!(
        !o.failed
            .iter()
            .any(|f| f == "gopher_short_doc" || f == "c4_too_few_sentences")
    );
    let mut off = FilterConfig::default();
    off.gopher_quality.enabled = false;
    off.gopher_repetition.enabled = false;
    off.c4.enabled = false;
    off.fineweb.enabled = false;
    let o = off.evaluate("tiny", &mut Scratch::default());
    assert!(o.kept() && o.stats.is_empty() && off.stat_names().is_empty());
}

/// Gopher's n-gram measures on random documents over a small vocabulary (so n-grams repeat, and
/// overlap), against a direct computation on word tuples: Python's `Counter.most_common` for the
/// top n-gram and datatrove's `find_all_duplicate` for the repeated ones. One scratch serves every
/// document, as in a job.
#[test]
fn gopher_ngram_measures_match_a_direct_count() {
    use crate::minhash::splitmix64;
    use std::collections::{HashMap, HashSet};
    let c = only("gopher_repetition");
    let names = c.stat_names();
    let vocab = ["a", "bb", "ccc", "déjà", "e", "fifty", "g", "hh"];
    let mut scratch = Scratch::default();
    let mut state = 11u64;
    for doc in 0..400 {
        let len = (splitmix64(&mut state) % 300) as usize;
        let kinds = 2 + doc % (vocab.len() - 1);
        let words: Vec<&str> = (0..len)
            .map(|_| vocab[(splitmix64(&mut state) % kinds as u64) as usize])
            .collect();
        let text = words.join(" ");
        let chars = text.chars().count() as f64;
        let wchars = |w: &[&str]| w.iter().map(|w| w.chars().count()).sum::<usize>();
        let o = c.evaluate(&text, &mut scratch);
        let stat = |name: String| o.stats[names.iter().position(|n| *n == name).unwrap()];
        for &(n, _) in &c.gopher_repetition.top_n_grams {
            let mut counts: HashMap<&[&str], (usize, usize)> = HashMap::new();
            for (i, g) in words.windows(n).enumerate() {
                counts.entry(g).or_insert((0, i)).0 += 1;
            }
            let want = counts
                .iter()
                .max_by_key(|&(_, &(count, first))| (count, std::cmp::Reverse(first)))
                .map_or(0, |(g, &(count, _))| (wchars(g) + n - 1) * count);
            let got = stat(format!("gopher_top_{n}_gram_char_frac"));
            assert!(
                (got - want as f64 / chars).abs() < 1e-12,
                "doc {doc} top {n}"
            );
        }
        for &(n, _) in &c.gopher_repetition.dup_n_grams {
            let (mut seen, mut repeated, mut i) = (HashSet::new(), 0, 0);
            while i + n <= words.len() {
                if seen.insert(&words[i..i + n]) {
                    i += 1;
                } else {
                    repeated += wchars(&words[i..i + n]);
                    i += n;
                }
            }
            let got = stat(format!("gopher_dup_{n}_gram_char_frac"));
            assert!(
                (got - repeated as f64 / chars).abs() < 1e-12,
                "doc {doc} dup {n}"
            );
        }
    }
}
