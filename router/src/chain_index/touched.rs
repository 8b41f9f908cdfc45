//! `facts_touched` (docs/protocol.md, Router: the chain index): which of the registry's facts an
//! event may have changed. The index does not replay the contract's logic from the events'
//! arguments; it reads each touched fact again, at the block it indexes, so that what it holds
//! is what the contract answers there whatever the event carried.

use alloy::{
    primitives::{Address, B256, Log},
    sol_types::SolEventInterface,
};
use morpheus_sdk::contracts::bindings::provider_registry::ProviderRegistry::ProviderRegistryEvents as Event;

/// One fact of the registry that selection reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Fact {
    /// Whether the whitelist is on (`whitelistActive`).
    WhitelistActive,
    /// A model's entry (`getModel`).
    Model(B256),
    /// A model's active bids (`getBidsForModel`).
    Bids(B256),
    /// A provider's record: endpoint, stake, status (`getProvider`).
    Provider(Address),
    /// Whether a provider is whitelisted (`isWhitelisted`).
    Whitelisted(Address),
    /// Whether a provider holds a claim on a model (`hasModelClaim`).
    Claim(Address, B256),
}

/// The facts a log of the registry may have changed; nothing for a log that is not one of its
/// events (another contract's, or one this build does not know).
pub(crate) fn facts_touched(log: &Log) -> Vec<Fact> {
    let Ok(event) = Event::decode_log(log) else {
        return Vec::new();
    };
    match event.data {
        Event::ProviderRegistered(e) => vec![Fact::Provider(e.provider)],
        Event::EndpointUpdated(e) => vec![Fact::Provider(e.provider)],
        Event::ProviderDeregistered(e) => vec![Fact::Provider(e.provider)],
        Event::StakeWithdrawn(e) => vec![Fact::Provider(e.provider)],
        Event::WhitelistAdded(e) => vec![Fact::Whitelisted(e.provider)],
        Event::WhitelistRemoved(e) => vec![Fact::Whitelisted(e.provider)],
        Event::WhitelistDisabled(_) => vec![Fact::WhitelistActive],
        Event::ModelRegistered(e) => vec![Fact::Model(e.modelId)],
        Event::ModelClaimed(e) => vec![Fact::Claim(e.provider, e.modelId)],
        // A bid's terms and whether it is active live in the model's list of bids.
        Event::BidPosted(e) => vec![Fact::Bids(e.modelId)],
        Event::BidUpdated(e) => vec![Fact::Bids(e.modelId)],
        Event::BidDeleted(e) => vec![Fact::Bids(e.modelId)],
        // The minimum stake applies to registrations to come; ownership changes nothing read.
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{FixedBytes, U256},
        sol_types::SolEvent,
    };
    use morpheus_sdk::contracts::bindings::provider_registry::ProviderRegistry as R;

    use super::*;

    fn log<E: SolEvent>(event: &E) -> Log {
        Log {
            address: Address::repeat_byte(0xee),
            data: event.encode_log_data(),
        }
    }

    #[test]
    fn each_registry_event_touches_the_facts_it_changes() {
        let (p, m) = (Address::repeat_byte(1), B256::repeat_byte(2));
        let bid = |price: u64| (U256::from(price), U256::from(4));
        let cases: Vec<(Log, Vec<Fact>)> = vec![
            (
                log(&R::ProviderRegistered {
                    provider: p,
                    endpoint: "http://a".into(),
                    stake: U256::from(1),
                }),
                vec![Fact::Provider(p)],
            ),
            (
                log(&R::EndpointUpdated {
                    provider: p,
                    endpoint: "http://b".into(),
                }),
                vec![Fact::Provider(p)],
            ),
            (
                log(&R::ProviderDeregistered {
                    provider: p,
                    unlockAt: U256::from(9),
                }),
                vec![Fact::Provider(p)],
            ),
            (
                log(&R::StakeWithdrawn {
                    provider: p,
                    amount: U256::from(1),
                }),
                vec![Fact::Provider(p)],
            ),
            (
                log(&R::WhitelistAdded { provider: p }),
                vec![Fact::Whitelisted(p)],
            ),
            (
                log(&R::WhitelistRemoved { provider: p }),
                vec![Fact::Whitelisted(p)],
            ),
            (log(&R::WhitelistDisabled {}), vec![Fact::WhitelistActive]),
            (
                log(&R::ModelRegistered {
                    modelId: m,
                    creator: p,
                    merkleRoot: B256::repeat_byte(3),
                    chunkCount: U256::from(1),
                    format: FixedBytes::ZERO,
                    name: "tiny".into(),
                }),
                vec![Fact::Model(m)],
            ),
            (
                log(&R::ModelClaimed {
                    provider: p,
                    modelId: m,
                    merkleRoot: B256::repeat_byte(3),
                }),
                vec![Fact::Claim(p, m)],
            ),
            (
                log(&R::BidPosted {
                    provider: p,
                    modelId: m,
                    pricePerToken: bid(5).0,
                    capacity: bid(5).1,
                }),
                vec![Fact::Bids(m)],
            ),
            (
                log(&R::BidUpdated {
                    provider: p,
                    modelId: m,
                    pricePerToken: bid(6).0,
                    capacity: bid(6).1,
                }),
                vec![Fact::Bids(m)],
            ),
            (
                log(&R::BidDeleted {
                    provider: p,
                    modelId: m,
                }),
                vec![Fact::Bids(m)],
            ),
            (
                log(&R::MinStakeSet {
                    minStake: U256::from(1),
                }),
                vec![],
            ),
        ];
        for (log, facts) in cases {
            assert_eq!(facts_touched(&log), facts, "{log:?}");
        }
    }

    #[test]
    fn a_log_that_is_no_registry_event_touches_nothing() {
        let foreign = Log::new_unchecked(
            Address::repeat_byte(1),
            vec![B256::repeat_byte(0xab)],
            vec![1, 2, 3].into(),
        );
        assert!(facts_touched(&foreign).is_empty());
        // A registry event's signature with data that does not decode.
        let torn = Log::new_unchecked(
            Address::repeat_byte(1),
            vec![R::BidPosted::SIGNATURE_HASH],
            vec![1, 2, 3].into(),
        );
        assert!(facts_touched(&torn).is_empty());
    }
}
