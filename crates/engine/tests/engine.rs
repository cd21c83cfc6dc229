//! The engine against the real default model and real llama.cpp.
//!
//! Needs the default model: `kefu models pull` (or `scripts/test`) stores it under `models/`;
//! `KEFU_TEST_MODEL` points elsewhere.

use std::time::{Duration, Instant};

use kefu_engine::{
    ChatMessage, Engine, EngineConfig, EngineError, EngineHandle, Event, FinishReason,
    GenerateRequest, Generation, SamplingOptions, Usage,
};

fn config(parallel: u32) -> EngineConfig {
    let mut c = EngineConfig::new(kefu_testkit::default_model());
    c.parallel = parallel;
    c.ctx_per_seq = 1024;
    c.batch_size = 256;
    c.threads = 2;
    c
}

const SYSTEM: &str = "You are the support assistant of CloudSail Drive, a cloud storage \
service. Answer briefly and politely. Only answer questions about CloudSail Drive plans, \
prices, sharing, security, invoices and refunds. The Pro plan costs 30 yuan a month and \
includes 2 TB of storage. Refunds are possible within 7 days of the first purchase.";

fn chat(handle: &EngineHandle, system: Option<&str>, user: &str) -> String {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(ChatMessage::new("system", s));
    }
    messages.push(ChatMessage::new("user", user));
    handle
        .tokenizer()
        .apply_chat_template(&messages, true)
        .unwrap()
}

fn greedy(max_tokens: u32) -> SamplingOptions {
    SamplingOptions {
        max_tokens,
        ..SamplingOptions::default()
    }
}

fn submit(handle: &EngineHandle, prompt: &str, options: SamplingOptions) -> Generation {
    handle
        .submit(GenerateRequest {
            prompt: prompt.to_owned(),
            options,
        })
        .unwrap()
}

/// Reads a generation to the end: its text, finish reason and usage.
fn collect(mut g: Generation) -> (String, FinishReason, Usage) {
    let mut text = String::new();
    while let Some(event) = g.blocking_next() {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish_reason,
                usage,
            } => return (text, finish_reason, usage),
            Event::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done");
}

fn run_alone(prompt: &str, max_tokens: u32) -> String {
    let mut c = config(1);
    c.prefix_cache_slots = 0;
    let engine = Engine::start(c).unwrap();
    collect(submit(&engine.handle(), prompt, greedy(max_tokens))).0
}

/// Questions with one well-known answer each, so cross-talk between sequences would show as a
/// wrong fact.
const QUESTIONS: [(&str, &str); 8] = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    (
        "Which planet is the largest in the solar system?",
        "Jupiter",
    ),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What colour is a clear daytime sky?", "blue"),
    ("What is the opposite of hot?", "cold"),
    ("What is the chemical formula of water?", "H"),
    ("How many days are in a week?", "seven"),
];

/// llama.cpp's CPU kernels give results that depend slightly on how many tokens a batch holds,
/// so a batched greedy answer can take another word where two candidates are nearly tied.
/// Tolerance: every batched answer states the same fact as its solo answer and no other
/// question's fact (no cross-talk). How many are byte-identical is printed (4-8 of 8 seen).
#[test]
fn eight_concurrent_prompts_match_their_solo_outputs() {
    let engine = Engine::start(config(8)).unwrap();
    let handle = engine.handle();
    let prompts: Vec<String> = QUESTIONS
        .iter()
        .map(|(q, _)| chat(&handle, None, q))
        .collect();
    let generations: Vec<_> = prompts
        .iter()
        .map(|p| submit(&handle, p, greedy(32)))
        .collect();
    let batched: Vec<String> = generations.into_iter().map(|g| collect(g).0).collect();
    drop(engine);
    let mut identical = 0;
    for (i, p) in prompts.iter().enumerate() {
        let alone = run_alone(p, 32);
        let (question, fact) = QUESTIONS[i];
        let has = |s: &str| s.to_lowercase().contains(&fact.to_lowercase());
        assert_eq!(
            has(&batched[i]),
            has(&alone),
            "{question}\nbatched: {:?}\nalone:   {alone:?}",
            batched[i]
        );
        for (j, (_, other)) in QUESTIONS.iter().enumerate() {
            if j != i && other.len() > 1 && batched[i].contains(other) {
                assert!(
                    alone.contains(other),
                    "{question}: cross-talk {:?}",
                    batched[i]
                );
            }
        }
        identical += usize::from(batched[i] == alone);
    }
    eprintln!("{identical}/8 batched outputs identical to solo outputs");
}

#[test]
fn answers_a_simple_question() {
    let engine = Engine::start(config(1)).unwrap();
    let handle = engine.handle();
    let prompt = chat(&handle, None, "What is the capital of France?");
    let (text, reason, usage) = collect(submit(&handle, &prompt, greedy(48)));
    assert!(text.contains("Paris"), "{text}");
    assert_eq!(reason, FinishReason::Stop);
    assert!(usage.completion_tokens > 0 && usage.prompt_tokens > 5);
    assert!(usage.time_to_first_token.is_some());
}

#[test]
fn max_tokens_and_stop_strings_end_generation() {
    let engine = Engine::start(config(2)).unwrap();
    let handle = engine.handle();
    let prompt = chat(&handle, None, "Count from 1 to 20, separated by commas.");
    let (text, reason, usage) = collect(submit(&handle, &prompt, greedy(5)));
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(usage.completion_tokens, 5, "{text}");

    let full = collect(submit(&handle, &prompt, greedy(40))).0;
    let cut = full.find('5').expect("the count contains 5");
    let options = SamplingOptions {
        stop: vec!["5".into()],
        ..greedy(40)
    };
    let (text, reason, _) = collect(submit(&handle, &prompt, options));
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(text, full[..cut], "text stops right before the stop string");
}

#[test]
fn seeded_sampling_is_reproducible() {
    let engine = Engine::start(config(2)).unwrap();
    let handle = engine.handle();
    let prompt = chat(&handle, None, "Tell me a very short story about a robot.");
    let options = SamplingOptions {
        temperature: 0.9,
        top_p: 0.95,
        top_k: 40,
        min_p: 0.05,
        repeat_penalty: 1.1,
        seed: Some(7),
        ..greedy(24)
    };
    let a = collect(submit(&handle, &prompt, options.clone())).0;
    let b = collect(submit(&handle, &prompt, options)).0;
    assert_eq!(a, b);
}

#[test]
fn cancelling_frees_the_sequence() {
    let engine = Engine::start(config(2)).unwrap();
    let handle = engine.handle();
    let prompt = chat(
        &handle,
        None,
        "Write a long essay about the history of ships.",
    );
    // Fill both sequences, then hang up on them after their first text.
    for _ in 0..2 {
        let mut g = submit(&handle, &prompt, greedy(400));
        assert!(matches!(g.blocking_next(), Some(Event::Text(_))));
        drop(g);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.stats().live_sequences > 0 {
        assert!(
            Instant::now() < deadline,
            "cancelled sequences were not freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(handle.stats().cancelled >= 2);
    // More requests than sequences all complete.
    let short = chat(&handle, None, "Say hello.");
    let generations: Vec<_> = (0..5).map(|_| submit(&handle, &short, greedy(8))).collect();
    for g in generations {
        let (_, _, usage) = collect(g);
        assert!(usage.completion_tokens > 0);
    }
}

#[test]
fn overlong_prompt_is_rejected_before_decoding() {
    let engine = Engine::start(config(1)).unwrap();
    let handle = engine.handle();
    let long = chat(&handle, None, &"word ".repeat(1200));
    let err = handle
        .submit(GenerateRequest {
            prompt: long,
            options: greedy(16),
        })
        .err()
        .expect("too long");
    assert!(
        matches!(err, EngineError::PromptTooLong { context: 1024, .. }),
        "{err}"
    );
    // A prompt that fits alone but not with its max_tokens is rejected too.
    let prompt = chat(&handle, None, "hi");
    let err = handle
        .submit(GenerateRequest {
            prompt: prompt.clone(),
            options: greedy(1020),
        })
        .err()
        .expect("too long with max_tokens");
    assert!(err.is_client_error());
    // The engine keeps serving.
    assert!(!collect(submit(&handle, &prompt, greedy(4))).0.is_empty());
}

#[test]
fn full_queue_answers_overloaded() {
    let mut c = config(1);
    c.queue_capacity = 1;
    let engine = Engine::start(c).unwrap();
    let handle = engine.handle();
    let prompt = chat(&handle, None, "Write a long essay about mountains.");
    let mut running = submit(&handle, &prompt, greedy(200));
    assert!(matches!(running.blocking_next(), Some(Event::Text(_))));
    let queued = submit(&handle, &prompt, greedy(4));
    let err = handle
        .submit(GenerateRequest {
            prompt: prompt.clone(),
            options: greedy(4),
        })
        .err()
        .expect("queue is full");
    assert_eq!(err, EngineError::Overloaded { capacity: 1 });
    assert_eq!(handle.stats().rejected_overloaded, 1);
    drop(running);
    let (_, _, usage) = collect(queued);
    assert_eq!(usage.completion_tokens, 4);
}

#[test]
fn shared_prefix_gives_the_same_output_as_full_prefill() {
    let mut c = config(4);
    c.prefix_cache_slots = 1;
    let engine = Engine::start(c).unwrap();
    let handle = engine.handle();
    let questions = [
        "How much is the Pro plan?",
        "Can I get a refund?",
        "Is my data safe?",
        "How do I share a file?",
    ];
    let prompts: Vec<String> = questions
        .iter()
        .map(|q| chat(&handle, Some(SYSTEM), q))
        .collect();

    // Four chats arriving together: one prefills the system prompt, the others copy it.
    let generations: Vec<_> = prompts
        .iter()
        .map(|p| submit(&handle, p, greedy(24)))
        .collect();
    let together: Vec<_> = generations.into_iter().map(collect).collect();
    let shared = together
        .iter()
        .filter(|(_, _, u)| u.cached_prompt_tokens > 0)
        .count();
    assert_eq!(shared, 3, "three of four reuse the first one's prefix");

    // A later chat copies the prefix from the cache.
    let later = chat(&handle, Some(SYSTEM), "What does the Pro plan include?");
    let (cached_text, _, usage) = collect(submit(&handle, &later, greedy(24)));
    let system_tokens = handle.tokenizer().count(SYSTEM) as u32;
    assert!(
        usage.cached_prompt_tokens >= system_tokens,
        "cached {} of a {system_tokens}-token system prompt",
        usage.cached_prompt_tokens
    );
    assert!(handle.stats().prefix_cache_hits >= 4);
    drop(engine);

    assert_eq!(
        cached_text,
        run_alone(&later, 24),
        "cache hit vs full prefill"
    );
    let mut identical = 0;
    for (i, p) in prompts.iter().enumerate() {
        assert!(!together[i].0.is_empty(), "{}", questions[i]);
        identical += usize::from(together[i].0 == run_alone(p, 24));
    }
    eprintln!("{identical}/4 answers sharing a live prefix identical to full prefill");
}

#[test]
fn repeated_prompt_from_the_cache_equals_full_prefill() {
    let engine = Engine::start(config(2)).unwrap();
    let handle = engine.handle();
    let prompt = chat(&handle, Some(SYSTEM), "What does the Pro plan cost?");
    let first = collect(submit(&handle, &prompt, greedy(32)));
    let second = collect(submit(&handle, &prompt, greedy(32)));
    assert_eq!(first.2.cached_prompt_tokens, 0);
    assert_eq!(second.2.cached_prompt_tokens, second.2.prompt_tokens - 1);
    assert_eq!(first.0, second.0);
    drop(engine);
    assert_eq!(second.0, run_alone(&prompt, 32));
}

#[test]
fn long_prompts_are_prefilled_in_chunks_while_others_decode() {
    let mut c = config(2);
    c.batch_size = 64;
    let engine = Engine::start(c).unwrap();
    let handle = engine.handle();
    let short = chat(&handle, None, "Say hello.");
    let long = chat(&handle, Some(&SYSTEM.repeat(4)), "Summarise the rules.");
    assert!(handle.tokenizer().count(&long) > 4 * 64);
    let a = submit(&handle, &short, greedy(16));
    let b = submit(&handle, &long, greedy(8));
    let (ta, _, _) = collect(a);
    let (tb, _, ub) = collect(b);
    assert!(!ta.is_empty() && !tb.is_empty());
    assert!(ub.prompt_tokens > 256);
    assert_eq!(tb, run_alone(&long, 8), "chunked prefill matches");
}

#[test]
fn invalid_options_and_empty_prompts_are_rejected() {
    let engine = Engine::start(config(1)).unwrap();
    let handle = engine.handle();
    let bad = SamplingOptions {
        top_p: 0.0,
        ..greedy(4)
    };
    let err = handle
        .submit(GenerateRequest {
            prompt: "hi".into(),
            options: bad,
        })
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::InvalidOptions(_)));
    let err = handle
        .submit(GenerateRequest {
            prompt: String::new(),
            options: greedy(4),
        })
        .err()
        .unwrap();
    assert_eq!(err, EngineError::EmptyPrompt);
}
