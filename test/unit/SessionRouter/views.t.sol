// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISessionRouter} from "../../../contracts/interfaces/ISessionRouter.sol";
import {Messages} from "../../../contracts/libraries/Messages.sol";
import {Base} from "../../Base.t.sol";

contract Views_Unit_Test is Base {
    function test_DomainSeparator() external view {
        assertEq(router.domainSeparator(), _domain(address(router)));
        assertEq(registry.domainSeparator(), _domain(address(registry)));
    }

    function testFuzz_HashTypedData(bytes32 structHash) external view {
        assertEq(
            router.hashTypedData(structHash),
            keccak256(abi.encodePacked("\x19\x01", _domain(address(router)), structHash))
        );
        assertEq(
            registry.hashTypedData(structHash),
            keccak256(abi.encodePacked("\x19\x01", _domain(address(registry)), structHash))
        );
    }

    function testFuzz_HashCreditVoucher(Messages.CreditVoucher memory v) external view {
        assertEq(router.hashCreditVoucher(v), _digest(v));
        assertEq(router.hashCreditVoucher(v), router.hashTypedData(Messages.hash(v)));
    }

    function testFuzz_HashComputeRequest(Messages.ComputeRequest memory m) external view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256(
                    "ComputeRequest(address user,bytes32 modelId,uint256 tokenMax,uint256 nonce,uint256 deadline)"
                ),
                m.user,
                m.modelId,
                m.tokenMax,
                m.nonce,
                m.deadline
            )
        );
        assertEq(router.hashComputeRequest(m), router.hashTypedData(expected));
    }

    function testFuzz_HashAssignment(Messages.Assignment memory m) external view {
        assertEq(router.hashAssignment(m), router.hashTypedData(Messages.hash(m)));
    }

    function testFuzz_HashUsageReport(Messages.UsageReport memory m) external view {
        assertEq(router.hashUsageReport(m), router.hashTypedData(Messages.hash(m)));
    }

    function testFuzz_HashLivenessChallenge(Messages.LivenessChallenge memory m) external view {
        assertEq(router.hashLivenessChallenge(m), router.hashTypedData(Messages.hash(m)));
    }

    function testFuzz_HashLivenessResponse(Messages.LivenessResponse memory m) external view {
        assertEq(router.hashLivenessResponse(m), router.hashTypedData(Messages.hash(m)));
    }

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
}
