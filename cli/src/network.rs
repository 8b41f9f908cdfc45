//! What the network serves: `morpheus models` (the registry's models with their bids) and
//! `morpheus providers --model` (the router's view of a model's providers).

use alloy::primitives::{B256, U256, utils::format_ether};
use morpheus_sdk::{
    contracts::{Protocol, format_label},
    router::{ProviderList, RouterClient},
};
use serde::Serialize;

use crate::{Error, Result, config::Settings};

/// Models read per registry call.
const PAGE: u64 = 100;

/// A registered model.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    /// Its id (`0x` hex), what requests name.
    pub model_id: B256,
    /// The name users know it by.
    pub name: String,
    /// The weights' format (`gguf`).
    pub format: String,
    /// 1 MiB chunks of the weights file.
    pub chunk_count: U256,
    /// Active bids on it.
    pub bids: usize,
    /// The cheapest bid, MOR (wei) per token.
    pub cheapest: Option<U256>,
}

/// Every registered model, in registration order, with its bids.
pub async fn models(settings: &Settings) -> Result<Vec<ModelView>> {
    let chain = Protocol::connect(&settings.rpc_url, settings.load_deployment()?, None).await?;
    let registry = chain.registry();
    let mut out = Vec::new();
    loop {
        let page = registry.models(out.len() as u64, PAGE).await?;
        let done = (page.len() as u64) < PAGE;
        for m in page {
            let bids = registry.bids_for_model(m.modelId, 0, PAGE).await?;
            out.push(ModelView {
                model_id: m.modelId,
                name: m.name.clone(),
                format: format_label(&m.format),
                chunk_count: m.chunkCount,
                bids: bids.len(),
                cheapest: bids.iter().map(|b| b.pricePerToken).min(),
            });
        }
        if done {
            break;
        }
    }
    Ok(out)
}

/// Lines for people: one model a line.
pub fn render_models(models: &[ModelView]) -> String {
    if models.is_empty() {
        return "no models are registered\n".into();
    }
    let mut out = String::new();
    for m in models {
        let price = m
            .cheapest
            .map(|p| format!("from {} MOR/token", format_ether(p)))
            .unwrap_or_else(|| "no bids".into());
        out.push_str(&format!(
            "{}  {} ({}, {} MiB)  {} bid(s), {}\n",
            m.model_id, m.name, m.format, m.chunk_count, m.bids, price
        ));
    }
    out
}

/// The id of `model`: a `0x` id as given, else the registered model of that name with the most
/// bids (the oldest among equals). An unknown name is an error listing the names there are.
pub fn resolve_model(models: &[ModelView], model: &str) -> Result<B256> {
    if let Ok(id) = model.parse::<B256>() {
        return Ok(id);
    }
    models
        .iter()
        .filter(|m| m.name == model)
        .max_by(|a, b| a.bids.cmp(&b.bids).then(std::cmp::Ordering::Greater))
        .map(|m| m.model_id)
        .ok_or_else(|| {
            let mut names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            names.dedup();
            Error::Config(format!(
                "no registered model is named {model:?} (registered: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ))
        })
}

/// The router's list of `model`'s providers.
pub async fn providers(settings: &Settings, model: &str) -> Result<ProviderList> {
    let id = match model.parse::<B256>() {
        Ok(id) => id,
        Err(_) => resolve_model(&models(settings).await?, model)?,
    };
    Ok(RouterClient::new(&settings.router_url)?
        .providers(id)
        .await?)
}

/// Lines for people: one provider a line, in the router's order.
pub fn render_providers(list: &ProviderList) -> String {
    if list.providers.is_empty() {
        return format!("no provider bids on {}\n", list.model_id);
    }
    let mut out = format!("model {}\n", list.model_id);
    for p in &list.providers {
        let r = &p.reputation;
        let speed = r
            .ms_per_token
            .map(|s| format!("{s:.1} ms/token"))
            .unwrap_or_else(|| "speed unknown".into());
        let ttft = r
            .ttft_ms
            .map(|t| format!("ttft {t:.0} ms"))
            .unwrap_or_else(|| "ttft unknown".into());
        out.push_str(&format!(
            "{}  {}  {} MOR/token  {}/{} open  stake {} MOR  {}  {}  completed {} failed {} cancelled {}  score {:.2}{}\n",
            p.provider,
            p.endpoint,
            format_ether(p.price_per_token),
            p.open_sessions,
            p.capacity,
            format_ether(p.stake),
            speed,
            ttft,
            r.completed,
            r.failed,
            r.cancelled,
            r.score,
            if p.record.bad_record { "  (bad record)" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(n: u8, name: &str, bids: usize) -> ModelView {
        ModelView {
            model_id: B256::repeat_byte(n),
            name: name.into(),
            format: "gguf".into(),
            chunk_count: U256::from(1),
            bids,
            cheapest: None,
        }
    }

    #[test]
    fn a_name_resolves_to_its_model_with_the_most_bids_and_an_id_to_itself() {
        let models = [
            model(1, "smollm2", 0),
            model(2, "smollm2", 3),
            model(3, "tiny", 1),
        ];
        assert_eq!(
            resolve_model(&models, "smollm2").expect("name"),
            B256::repeat_byte(2)
        );
        let id = B256::repeat_byte(9);
        assert_eq!(resolve_model(&models, &id.to_string()).expect("id"), id);
        let err = resolve_model(&models, "llama").expect_err("unknown");
        assert!(err.to_string().contains("smollm2, tiny"), "{err}");
    }

    #[test]
    fn among_equals_the_oldest_registration_wins() {
        let models = [model(1, "m", 2), model(2, "m", 2)];
        assert_eq!(
            resolve_model(&models, "m").expect("name"),
            B256::repeat_byte(1)
        );
    }
}
