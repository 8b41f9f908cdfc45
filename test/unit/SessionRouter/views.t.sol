// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ProviderRegistry} from "../../../contracts/ProviderRegistry.sol";
import {SessionRouter} from "../../../contracts/SessionRouter.sol";
import {ISessionRouter} from "../../../contracts/interfaces/ISessionRouter.sol";
import {Messages} from "../../../contracts/libraries/Messages.sol";
import {Base} from "../../Base.t.sol";
import {MessageVectors} from "../../utils/MessageVectors.sol";

/// @notice The hash views are checked against the fixed vectors of `MessageVectors`, computed with cast
/// alone (the recipe is in that file), on a router and a registry deployed as `Base` deploys them but at
/// the fixed addresses those vectors were computed for. The fuzz tests compare two different
/// implementations, or hold a property that a hash dropping or truncating a field breaks.
contract Views_Unit_Test is Base, MessageVectors {
    /// @dev The domain on Arbitrum One (chain 42161) for ROUTER_AT, as in `MessageVectors` with 42161 for 31337.
    bytes32 internal constant ROUTER_DOMAIN_ARBITRUM =
        0x1d38ed5cbdf70acc67210f389b89ab749fadfe9ddf66a0251d1b6156a2fc47b5;
    /// @dev cast keccak $(cast concat-hex 0x1901 ROUTER_DOMAIN_ARBITRUM CREDIT_VOUCHER_HASH)
    bytes32 internal constant CREDIT_VOUCHER_DIGEST_ARBITRUM =
        0xf6f3f6a0a2cb15f245a88ea66ba673491a6e868ada6cef36abb47a04e1ee062b;

    SessionRouter internal pinnedRouter;
    ProviderRegistry internal pinnedRegistry;

    function setUp() public override {
        super.setUp();
        vm.chainId(CHAIN_ID);
        deployCodeTo(
            "SessionRouter.sol:SessionRouter",
            abi.encode(
                owner,
                mor,
                pool,
                prices,
                ROUTER_DELAY,
                _pair(routerSigner, router2Signer),
                _pair(ROUTER_SHARE, ROUTER2_SHARE)
            ),
            ROUTER_AT
        );
        deployCodeTo(
            "ProviderRegistry.sol:ProviderRegistry", abi.encode(owner, mor, MIN_STAKE, COOLDOWN), REGISTRY_AT
        );
        pinnedRouter = SessionRouter(ROUTER_AT);
        pinnedRegistry = ProviderRegistry(REGISTRY_AT);
    }

    /*//////////////////////////////////////////////////////////////
                              DOMAIN, DIGEST
    //////////////////////////////////////////////////////////////*/

    function test_DomainSeparator() external view {
        assertEq(pinnedRouter.domainSeparator(), ROUTER_DOMAIN, "router");
        assertEq(pinnedRegistry.domainSeparator(), REGISTRY_DOMAIN, "registry");
    }

    /// @dev OZ `EIP712` caches the separator of the deployment chain and rebuilds it on another chain, so a
    /// voucher signed for one chain is not the digest the router checks on another.
    function test_DomainSeparator_FollowsTheChain() external {
        vm.chainId(42_161);
        assertEq(pinnedRouter.domainSeparator(), ROUTER_DOMAIN_ARBITRUM, "domain");
        assertEq(pinnedRouter.hashCreditVoucher(_exampleVoucher()), CREDIT_VOUCHER_DIGEST_ARBITRUM, "digest");
        vm.chainId(CHAIN_ID);
        assertEq(pinnedRouter.domainSeparator(), ROUTER_DOMAIN, "back on the deployment chain");
    }

    /// @dev The digest of a struct hash, without `Messages`: each fixed struct hash to its fixed digest.
    function test_HashTypedData() external view {
        assertEq(pinnedRouter.hashTypedData(COMPUTE_REQUEST_HASH), COMPUTE_REQUEST_DIGEST, "ComputeRequest");
        assertEq(pinnedRouter.hashTypedData(ASSIGNMENT_HASH), ASSIGNMENT_DIGEST, "Assignment");
        assertEq(pinnedRouter.hashTypedData(USAGE_REPORT_HASH), USAGE_REPORT_DIGEST, "UsageReport");
        assertEq(pinnedRouter.hashTypedData(CREDIT_VOUCHER_HASH), CREDIT_VOUCHER_DIGEST, "CreditVoucher");
        assertEq(
            pinnedRouter.hashTypedData(LIVENESS_CHALLENGE_HASH),
            LIVENESS_CHALLENGE_DIGEST,
            "LivenessChallenge"
        );
        assertEq(
            pinnedRouter.hashTypedData(LIVENESS_RESPONSE_HASH), LIVENESS_RESPONSE_DIGEST, "LivenessResponse"
        );
        assertEq(pinnedRouter.hashTypedData(SERVICE_RECEIPT_HASH), SERVICE_RECEIPT_DIGEST, "ServiceReceipt");
        assertEq(pinnedRegistry.hashTypedData(MODEL_CLAIM_HASH), MODEL_CLAIM_DIGEST, "ModelClaim");
    }

    /// @dev EIP-712's formula over the fixed domains against OZ's assembly `toTypedDataHash`, for any struct hash.
    function testFuzz_HashTypedData(bytes32 structHash) external view {
        assertEq(
            pinnedRouter.hashTypedData(structHash),
            keccak256(abi.encodePacked(hex"1901", ROUTER_DOMAIN, structHash))
        );
        assertEq(
            pinnedRegistry.hashTypedData(structHash),
            keccak256(abi.encodePacked(hex"1901", REGISTRY_DOMAIN, structHash))
        );
    }

    /*//////////////////////////////////////////////////////////////
                               HASH VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_HashComputeRequest() external view {
        assertEq(pinnedRouter.hashComputeRequest(_exampleRequest()), COMPUTE_REQUEST_DIGEST);
    }

    /// @dev Flipping any one bit of any field moves the digest off the fixed vector. The vector alone misses a
    /// field dropped for a constant that matches the example, or cut to fewer bits (4096 fits a uint64);
    /// a single flipped bit, high or low, does not.
    function testFuzz_HashComputeRequest_ChangesWithAnyBit(uint256 field, uint8 bit) external view {
        Messages.ComputeRequest memory m = _exampleRequest();
        uint256 flip = 1 << bit;
        field = bound(field, 0, 4);
        if (field == 0) m.user = _flip(m.user, bit);
        else if (field == 1) m.modelId ^= bytes32(flip);
        else if (field == 2) m.tokenMax ^= flip;
        else if (field == 3) m.nonce ^= flip;
        else m.deadline ^= flip;
        assertNotEq(pinnedRouter.hashComputeRequest(m), COMPUTE_REQUEST_DIGEST);
    }

    function test_HashAssignment() external view {
        assertEq(pinnedRouter.hashAssignment(_exampleAssignment()), ASSIGNMENT_DIGEST);
    }

    /// @dev As for the request; the endpoint changes in one bit of its UTF-8 bytes.
    function testFuzz_HashAssignment_ChangesWithAnyBit(uint256 field, uint8 bit) external view {
        Messages.Assignment memory m = _exampleAssignment();
        uint256 flip = 1 << bit;
        field = bound(field, 0, 6);
        if (field == 0) m.sessionId ^= bytes32(flip);
        else if (field == 1) m.provider = _flip(m.provider, bit);
        else if (field == 2) m.endpoint = _flip(m.endpoint, bit);
        else if (field == 3) m.modelId ^= bytes32(flip);
        else if (field == 4) m.tokenMax ^= flip;
        else if (field == 5) m.pricePerToken ^= flip;
        else m.expiresAt ^= flip;
        assertNotEq(pinnedRouter.hashAssignment(m), ASSIGNMENT_DIGEST);
    }

    function test_HashUsageReport() external view {
        assertEq(pinnedRouter.hashUsageReport(_exampleReport()), USAGE_REPORT_DIGEST);
    }

    /// @dev As for the request; `passed` changes by negation.
    function testFuzz_HashUsageReport_ChangesWithAnyBit(uint256 field, uint8 bit) external view {
        Messages.UsageReport memory m = _exampleReport();
        uint256 flip = 1 << bit;
        field = bound(field, 0, 4);
        if (field == 0) m.sessionId ^= bytes32(flip);
        else if (field == 1) m.tokens ^= flip;
        else if (field == 2) m.ttftMs ^= flip;
        else if (field == 3) m.durationMs ^= flip;
        else m.passed = !m.passed;
        assertNotEq(pinnedRouter.hashUsageReport(m), USAGE_REPORT_DIGEST);
    }

    /// @dev The router hashes the voucher from calldata in assembly; the test kit signs `Messages.hash`.
    function test_HashCreditVoucher() external view {
        assertEq(pinnedRouter.hashCreditVoucher(_exampleVoucher()), CREDIT_VOUCHER_DIGEST, "router");
        assertEq(_digest(ROUTER_AT, _exampleVoucher()), CREDIT_VOUCHER_DIGEST, "test kit");
    }

    /// @dev Two implementations: the router's calldata hash against the test kit's digest over the
    /// library's memory hash, which every claim test signs with `Base`'s router, for any voucher.
    function testFuzz_HashCreditVoucher_MatchesTestKit(Messages.CreditVoucher memory v) external view {
        assertEq(router.hashCreditVoucher(v), _digest(v));
    }

    /// @dev As for the request.
    function testFuzz_HashCreditVoucher_ChangesWithAnyBit(uint256 field, uint8 bit) external view {
        Messages.CreditVoucher memory m = _exampleVoucher();
        uint256 flip = 1 << bit;
        field = bound(field, 0, 7);
        if (field == 0) m.router = _flip(m.router, bit);
        else if (field == 1) m.provider = _flip(m.provider, bit);
        else if (field == 2) m.cumulativeAmount ^= flip;
        else if (field == 3) m.cumulativeBootstrap ^= flip;
        else if (field == 4) m.cumulativeTokens ^= flip;
        else if (field == 5) m.sessions ^= flip;
        else if (field == 6) m.failed ^= flip;
        else m.issuedAt ^= flip;
        assertNotEq(pinnedRouter.hashCreditVoucher(m), CREDIT_VOUCHER_DIGEST);
    }

    function test_HashLivenessChallenge() external view {
        assertEq(pinnedRouter.hashLivenessChallenge(_exampleChallenge()), LIVENESS_CHALLENGE_DIGEST);
    }

    /// @dev As for the request.
    function testFuzz_HashLivenessChallenge_ChangesWithAnyBit(uint256 field, uint8 bit) external view {
        Messages.LivenessChallenge memory m = _exampleChallenge();
        uint256 flip = 1 << bit;
        field = bound(field, 0, 4);
        if (field == 0) m.challengeId ^= bytes32(flip);
        else if (field == 1) m.provider = _flip(m.provider, bit);
        else if (field == 2) m.modelId ^= bytes32(flip);
        else if (field == 3) m.chunkIndex ^= flip;
        else m.deadline ^= flip;
        assertNotEq(pinnedRouter.hashLivenessChallenge(m), LIVENESS_CHALLENGE_DIGEST);
    }

    function test_HashLivenessResponse() external view {
        assertEq(pinnedRouter.hashLivenessResponse(_exampleResponse()), LIVENESS_RESPONSE_DIGEST);
    }

    /// @dev As for the request.
    function testFuzz_HashLivenessResponse_ChangesWithAnyBit(bool second, uint8 bit) external view {
        Messages.LivenessResponse memory m = _exampleResponse();
        uint256 flip = 1 << bit;
        if (second) m.chunkHash ^= bytes32(flip);
        else m.challengeId ^= bytes32(flip);
        assertNotEq(pinnedRouter.hashLivenessResponse(m), LIVENESS_RESPONSE_DIGEST);
    }

    function test_HashServiceReceipt() external view {
        assertEq(pinnedRouter.hashServiceReceipt(_exampleReceipt()), SERVICE_RECEIPT_DIGEST);
    }

    /// @dev As for the request.
    function testFuzz_HashServiceReceipt_ChangesWithAnyBit(bool second, uint8 bit) external view {
        Messages.ServiceReceipt memory m = _exampleReceipt();
        uint256 flip = 1 << bit;
        if (second) m.tokens ^= flip;
        else m.sessionId ^= bytes32(flip);
        assertNotEq(pinnedRouter.hashServiceReceipt(m), SERVICE_RECEIPT_DIGEST);
    }

    function test_HashReceiptRequest() external view {
        assertEq(pinnedRouter.hashReceiptRequest(_exampleReceiptRequest()), RECEIPT_REQUEST_DIGEST);
    }

    /// @dev Any bit of any assignment's session, or any byte more in an endpoint, changes the digest.
    function testFuzz_HashReceiptRequest_ChangesWithAnyAssignment(bool second, uint8 bit, bool endpoint)
        external
        view
    {
        Messages.ReceiptRequest memory m = _exampleReceiptRequest();
        Messages.Assignment memory a = m.assignments[second ? 1 : 0];
        if (endpoint) a.endpoint = string.concat(a.endpoint, "/");
        else a.sessionId ^= bytes32(uint256(1) << bit);
        assertNotEq(pinnedRouter.hashReceiptRequest(m), RECEIPT_REQUEST_DIGEST);
    }

    function test_HashServiceReceipts() external view {
        assertEq(pinnedRouter.hashServiceReceipts(_exampleReceipts()), SERVICE_RECEIPTS_DIGEST);
    }

    /// @dev Any bit of any receipt changes the digest.
    function testFuzz_HashServiceReceipts_ChangesWithAnyBit(bool second, bool tokens, uint8 bit)
        external
        view
    {
        Messages.ServiceReceipts memory m = _exampleReceipts();
        Messages.ServiceReceipt memory r = m.receipts[second ? 1 : 0];
        uint256 flip = 1 << bit;
        if (tokens) r.tokens ^= flip;
        else r.sessionId ^= bytes32(flip);
        assertNotEq(pinnedRouter.hashServiceReceipts(m), SERVICE_RECEIPTS_DIGEST);
    }

    /*//////////////////////////////////////////////////////////////
                    ACCESS RATE, ROUTER ALLOWANCE, REPUTATION
    //////////////////////////////////////////////////////////////*/

    /// @dev The access-rate views follow the pool's budget and the price source.
    function test_AccessRateViews() external {
        // Budget 9,000 MOR at $20 buys 9,000 * 20 / 0.002 * 1000 = 9e10 tokens.
        assertEq(router.maxT(), 90_000_000_000);
        uint256 supply = mor.totalSupply();
        assertEq(router.accessRate(), 90_000_000_000 * 1e18 / supply);
        vm.prank(alice);
        router.stake(5e18);
        assertEq(router.userMax(alice), 90_000_000_000 * 5e18 / supply);
        assertEq(router.userMax(bob), 0);
    }

    /// @dev Each router may grant a user its share of the user's allowance; one not authorised, nothing.
    function test_RouterUserMax() external {
        vm.prank(alice);
        router.stake(5000e18);
        uint256 userMax = router.userMax(alice);
        assertGt(userMax, 0);
        assertEq(router.routerUserMax(routerSigner, alice), userMax * ROUTER_SHARE / 10_000);
        assertEq(router.routerUserMax(router2Signer, alice), userMax * ROUTER2_SHARE / 10_000);
        assertEq(router.routerUserMax(eve, alice), 0);
        assertEq(router.routerUserMax(routerSigner, bob), 0); // bob stakes nothing

        // An announced router grants nothing before its effectiveAt, and its share once it applies.
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 1000);
        router.addRouter(eve, 3000);
        vm.stopPrank();
        assertEq(router.routerUserMax(eve, alice), 0);
        vm.warp(block.timestamp + ROUTER_DELAY);
        userMax = router.userMax(alice);
        assertEq(router.routerUserMax(eve, alice), userMax * 3000 / 10_000);
        assertEq(router.routerUserMax(router2Signer, alice), userMax * 1000 / 10_000);

        // A removed router grants nothing, even within its grace.
        vm.prank(owner);
        router.removeRouter(routerSigner);
        assertEq(router.routerUserMax(routerSigner, alice), 0);
    }

    /// @dev Honest routers together never grant a user more than userMax a day: whatever the routers and
    /// their shares (the total held within 10,000 bps), pending ones included, and whatever the stake, the sum
    /// over every listed router of routerUserMax is at most userMax.
    function testFuzz_RouterUserMax_SumAtMostUserMax(
        uint16[8] memory shares,
        uint256 announced,
        uint256 stake,
        uint256 wait
    ) external {
        stake = bound(stake, 1, ACTOR_MOR);
        announced = bound(announced, 0, 8);
        wait = bound(wait, 0, 2 * ROUTER_DELAY);
        vm.startPrank(owner);
        router.setRouterShare(routerSigner, bound(shares[0], 0, ROUTER_SHARE));
        router.setRouterShare(router2Signer, bound(shares[1], 0, ROUTER2_SHARE));
        (, uint256 a,) = router.routerInfo(routerSigner);
        (, uint256 b,) = router.routerInfo(router2Signer);
        uint256 room = 10_000 - a - b;
        for (uint256 i; i < 8; ++i) {
            uint256 share = bound(uint256(shares[i]) * 7919, 0, room);
            room -= share;
            router.addRouter(makeAddr(string.concat("fuzzRouter", vm.toString(i))), share);
            // The first `announced` are waited out and apply; the rest stay pending unless `wait` applies them.
            if (i < announced) vm.warp(block.timestamp + ROUTER_DELAY);
        }
        vm.stopPrank();
        vm.warp(block.timestamp + wait);
        vm.prank(alice);
        router.stake(stake);

        address[] memory keys = router.routers();
        assertEq(keys.length, 10);
        uint256 sum;
        uint256 shareSum;
        for (uint256 i; i < keys.length; ++i) {
            sum += router.routerUserMax(keys[i], alice);
            (bool authorised, uint256 share,) = router.routerInfo(keys[i]);
            if (authorised) shareSum += share;
        }
        assertLe(shareSum, router.totalRouterShareBps());
        assertLe(router.totalRouterShareBps(), 10_000);
        assertLe(sum, router.userMax(alice));
    }

    function test_Reputation_SumsRouters() external {
        Messages.CreditVoucher memory a = _voucher(routerSigner, provider, 10e18, 1e18);
        a.cumulativeTokens = 100;
        a.sessions = 3;
        a.failed = 1;
        Messages.CreditVoucher memory b = _voucher(router2Signer, provider, 20e18, 0);
        b.cumulativeTokens = 200;
        b.sessions = 5;
        b.failed = 2;
        _claim(routerKey, a);
        _claim(router2Key, b);
        ISessionRouter.Reputation memory rep = router.reputation(provider);
        assertEq(rep.tokens, 300);
        assertEq(rep.sessions, 8);
        assertEq(rep.failed, 3);
        assertEq(rep.earned, 30e18);
        assertEq(rep.bootstrapEarned, 1e18);
        assertEq(router.reputation(provider2).sessions, 0);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev `a` with one of its 160 bits flipped.
    function _flip(address a, uint8 bit) internal pure returns (address) {
        return address(uint160(a) ^ uint160(1 << (bit % 160)));
    }

    /// @dev A copy of `s` with one bit of its bytes flipped (`s` is not empty).
    function _flip(string memory s, uint8 bit) internal pure returns (string memory) {
        bytes memory b = bytes.concat(bytes(s));
        uint256 i = bit % (b.length * 8);
        b[i / 8] ^= bytes1(uint8(1 << (i % 8)));
        return string(b);
    }
}
