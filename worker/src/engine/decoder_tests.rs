//! The worker's own kernels against ONNX Runtime's, through whole decoders of the tiny model.

use super::Decoder;
use crate::{
    engine::EngineConfig,
    kernels::Activations,
    model::{ModelMeta, prepare::Kernels},
    runtime::{self, Device},
};

fn load(kernels: Kernels, activations: Activations) -> Decoder {
    // The kit prepares the models (with its own build of this crate: only paths cross over).
    let dir = match kernels {
        Kernels::Morpheus => morpheus_testkit::tiny_model(),
        Kernels::Onnxruntime => morpheus_testkit::tiny_model_onnxruntime(),
    };
    let meta = ModelMeta::read(&dir).expect("the prepared model's morpheus.json");
    let lib = morpheus_testkit::ort_library().expect("ONNX Runtime library");
    let env = runtime::environment(&lib).expect("ONNX Runtime loads");
    let cfg = EngineConfig {
        max_batch: 4,
        max_context: 64,
        threads: 2,
        device: Device::Cpu,
        max_queue: 4,
        activations,
        ..Default::default()
    };
    Decoder::load(&env, &dir.join(&meta.model_file), &meta, &cfg).expect("decoder loads")
}

/// The tiny Gemma 3 model's decoder, `slots` sequences of `context` positions.
fn tiny_gemma3(slots: usize, context: usize) -> Decoder {
    let dir = morpheus_testkit::tiny_arch_model("gemma3");
    let meta = ModelMeta::read(&dir).expect("meta");
    let lib = morpheus_testkit::ort_library().expect("ONNX Runtime library");
    let env = runtime::environment(&lib).expect("ONNX Runtime loads");
    let cfg = EngineConfig {
        max_batch: slots,
        max_context: context,
        threads: 2,
        device: Device::Cpu,
        max_queue: slots,
        ..Default::default()
    };
    Decoder::load(&env, &dir.join(&meta.model_file), &meta, &cfg).expect("loads")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn morpheus_kernels_agree_with_onnxruntime_kernels() {
    for activations in [Activations::Int8x2, Activations::Int8] {
        agree(activations);
    }
}

fn agree(activations: Activations) {
    let mut ours = load(Kernels::Morpheus, activations);
    let mut theirs = load(Kernels::Onnxruntime, Activations::default());
    let meta = ModelMeta::read(&morpheus_testkit::tiny_model()).expect("meta");
    assert_eq!(ours.vocab, meta.vocab_size);
    let vocab = ours.vocab;
    let prompts: [Vec<u32>; 3] = [
        (3..20).collect(),
        (40..52).rev().collect(),
        vec![100, 7, 250, 33, 33, 90, 12, 5, 61],
    ];
    // Both quantise activations to int8 per block, each its own way. On this small random model
    // that alone moves the logits to a cosine of 0.98-0.9995 from the exact float ones (both
    // builds, measured against a float build), so the two agree to about that on average; a
    // wrong layout or a misplaced SwiGLU gives unrelated logits. The kernels' arithmetic is
    // tested exactly in `kernels::tests`.
    let mut cosines = Vec::new();
    let mut lens = Vec::new();
    // Each prompt alone into its slot (a prompt batch of many positions)...
    for (slot, prompt) in prompts.iter().enumerate() {
        let a = ours
            .run_slots(slot, &[(0, prompt)])
            .expect("our prompt run");
        let b = theirs
            .run_slots(slot, &[(0, prompt)])
            .expect("their prompt run");
        let c = cosine(&a, &b);
        cosines.push((format!("prompt {slot}"), c));
        lens.push(prompt.len());
    }
    // ...then steps of three rows at once (the batched decode path).
    let mut next: Vec<u32> = vec![1, 2, 3];
    for step in 0..4 {
        let rows: Vec<(usize, &[u32])> = lens
            .iter()
            .zip(&next)
            .map(|(len, tok)| (*len, std::slice::from_ref(tok)))
            .collect();
        let a = ours.run_slots(0, &rows).expect("our step");
        let b = theirs.run_slots(0, &rows).expect("their step");
        for r in 0..3 {
            let (ra, rb) = (
                &a[r * vocab..(r + 1) * vocab],
                &b[r * vocab..(r + 1) * vocab],
            );
            let c = cosine(ra, rb);
            cosines.push((format!("step {step}, row {r}"), c));
        }
        for (len, tok) in lens.iter_mut().zip(next.iter_mut()) {
            *len += 1;
            *tok = (*tok * 37 + 11) % vocab as u32;
        }
    }
    let mean = cosines.iter().map(|c| c.1).sum::<f64>() / cosines.len() as f64;
    let worst = cosines
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("some runs");
    assert!(
        mean > 0.994,
        "{activations:?}: mean cosine {mean}: {cosines:?}"
    );
    assert!(
        worst.1 > 0.98,
        "{activations:?}, {}: cosine {}",
        worst.0,
        worst.1
    );
}

#[test]
fn a_prompt_after_a_cached_prefix_gives_the_logits_of_the_whole() {
    // The prefix cache runs only the rest of a prompt after positions already in the slot: the
    // logits must be those of the whole prompt run at once, on both kernel builds.
    for kernels in [Kernels::Morpheus, Kernels::Onnxruntime] {
        let mut d = load(kernels, Activations::default());
        let prompt: Vec<u32> = (0..30).map(|i| (i * 17 + 5) % 250 + 3).collect();
        let whole = d.run_slots(0, &[(0, &prompt)]).expect("whole");
        d.run_slots(1, &[(0, &prompt[..20])]).expect("prefix");
        let rest = d.run_slots(1, &[(20, &prompt[20..])]).expect("rest");
        let c = cosine(&whole, &rest);
        assert!(c > 0.9999, "{kernels:?}: cosine {c}");
        // A copied slot (the cache moved to another slot) answers the same.
        if let Some(kv) = d.kv.as_mut() {
            kv.move_slot(1, 3, 20);
        }
        let moved = d.run_slots(3, &[(20, &prompt[20..])]).expect("moved");
        assert!(cosine(&rest, &moved) > 0.99999, "{kernels:?}");
    }
}

#[test]
fn prompts_of_different_lengths_prefilled_together_answer_as_each_alone() {
    // Right-padded rows of one run: each row's logits, and the steps after it (which overwrite
    // the padding's cache entries), must be those of the prompt run alone, on both builds.
    for kernels in [Kernels::Morpheus, Kernels::Onnxruntime] {
        let mut together = load(kernels, Activations::default());
        let mut alone = load(kernels, Activations::default());
        let prompts: [Vec<u32>; 3] = [
            (3..30).collect(),
            vec![100, 7, 250, 33],
            (40..57).rev().collect(),
        ];
        let rows: Vec<(usize, &[u32])> = prompts.iter().map(|p| (0, p.as_slice())).collect();
        let mut got = together.run_slots(0, &rows).expect("together");
        let vocab = together.vocab;
        let mut lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
        for step in 0..3 {
            for (r, prompt) in prompts.iter().enumerate() {
                let want = if step == 0 {
                    alone.run_slots(r, &[(0, prompt)]).expect("alone")
                } else {
                    let tok = [(r as u32 * 31 + step) % 250 + 3];
                    alone
                        .run_slots(r, &[(lens[r] - 1, &tok)])
                        .expect("alone step")
                };
                let c = cosine(&got[r * vocab..(r + 1) * vocab], &want);
                assert!(c > 0.99999, "{kernels:?} step {step} row {r}: cosine {c}");
            }
            let toks: Vec<[u32; 1]> = (0..3)
                .map(|r| [(r as u32 * 31 + step + 1) % 250 + 3])
                .collect();
            let rows: Vec<(usize, &[u32])> = lens
                .iter()
                .zip(&toks)
                .map(|(&len, t)| (len, t.as_slice()))
                .collect();
            got = together.run_slots(0, &rows).expect("together step");
            for len in &mut lens {
                *len += 1;
            }
        }
    }
}

#[test]
fn a_prompt_longer_than_gemmas_window_runs_at_once_as_token_by_token() {
    // Gemma 3's sliding-window layers (16 positions in the tiny model): the prompt path (many
    // positions in one run) must mask as the decode path does (`verify` checks that one against
    // the numpy reference).
    let mut d = tiny_gemma3(2, 64);
    let prompt: Vec<u32> = (0..40).map(|i| (i * 13 + 7) % 250 + 3).collect();
    let whole = d.run_slots(0, &[(0, &prompt)]).expect("whole");
    let mut last = Vec::new();
    for (i, t) in prompt.iter().enumerate() {
        last = d
            .run_slots(1, &[(i, std::slice::from_ref(t))])
            .expect("one");
    }
    let c = cosine(&whole, &last);
    assert!(c > 0.99999, "cosine {c}");
}

#[test]
fn a_token_outside_the_embedding_blocks_is_an_error_naming_it() {
    // Gemma's embeddings are read from their Q8_0 blocks (`BlockGather`): an id past the table
    // fails the run with the id, and the decoder runs on afterwards.
    let mut d = tiny_gemma3(1, 16);
    let err = d
        .run_slots(0, &[(0, &[5, 100_000])])
        .expect_err("outside the table");
    let msg = err.to_string();
    assert!(
        msg.contains("BlockGather") && msg.contains("index 100000 is outside the table's 0..267"),
        "{msg}"
    );
    assert!(d.run_slots(0, &[(0, &[5, 6])]).is_ok());
}
