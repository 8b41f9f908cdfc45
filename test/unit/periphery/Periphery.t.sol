// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {IFixedAggregator} from "../../../contracts/interfaces/IFixedAggregator.sol";
import {IFixedPriceSource} from "../../../contracts/interfaces/IFixedPriceSource.sol";
import {FixedAggregator} from "../../../contracts/oracles/FixedAggregator.sol";
import {FixedPriceSource} from "../../../contracts/oracles/FixedPriceSource.sol";
import {Base} from "../../Base.t.sol";

contract Periphery_Unit_Test is Base {
    function test_FixedPriceSource() external view {
        (uint256 morUsd, uint256 tokensUsd) = prices.prices();
        assertEq(morUsd, MOR_USD);
        assertEq(tokensUsd, TOKENS_USD);
    }

    function testFuzz_SetPrices(uint256 morUsd, uint256 tokensUsd) external {
        morUsd = bound(morUsd, 1, type(uint128).max);
        tokensUsd = bound(tokensUsd, 1, type(uint128).max);
        vm.expectEmit(address(prices));
        emit IFixedPriceSource.PricesSet(morUsd, tokensUsd);
        vm.prank(owner);
        prices.setPrices(morUsd, tokensUsd);
        (uint256 a, uint256 b) = prices.prices();
        assertEq(a, morUsd);
        assertEq(b, tokensUsd);
    }

    function test_RevertWhen_SetPricesZero() external {
        vm.expectRevert(abi.encodeWithSelector(IFixedPriceSource.FixedPriceSourceZeroPrice.selector, 0, 1));
        vm.prank(owner);
        prices.setPrices(0, 1);
        vm.expectRevert(abi.encodeWithSelector(IFixedPriceSource.FixedPriceSourceZeroPrice.selector, 1, 0));
        new FixedPriceSource(owner, 1, 0);
    }

    function test_RevertWhen_SetPricesNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        prices.setPrices(1, 1);
    }

    function test_FixedAggregator() external {
        vm.warp(1_000_000);
        FixedAggregator feed = new FixedAggregator(owner, "ETH / USD", 3000e8);
        assertEq(feed.decimals(), 8);
        assertEq(feed.description(), "ETH / USD");
        (uint80 round, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) =
            feed.latestRoundData();
        assertEq(round, 1);
        assertEq(answer, 3000e8);
        assertEq(startedAt, 1_000_000);
        assertEq(updatedAt, 1_000_000);
        assertEq(answeredIn, 1);
    }

    function testFuzz_SetAnswer(int256 value, uint32 later) external {
        value = bound(value, 1, type(int128).max);
        FixedAggregator feed = new FixedAggregator(owner, "ETH / USD", 3000e8);
        vm.warp(block.timestamp + later);
        vm.expectEmit(address(feed));
        emit IFixedAggregator.AnswerSet(2, value);
        vm.prank(owner);
        feed.setAnswer(value);
        (uint80 round, int256 answer,, uint256 updatedAt,) = feed.latestRoundData();
        assertEq(round, 2);
        assertEq(answer, value);
        assertEq(updatedAt, block.timestamp);
    }

    function test_RevertWhen_SetAnswerNotPositive() external {
        FixedAggregator feed = new FixedAggregator(owner, "ETH / USD", 3000e8);
        vm.expectRevert(
            abi.encodeWithSelector(IFixedAggregator.FixedAggregatorNonPositiveAnswer.selector, -1)
        );
        vm.prank(owner);
        feed.setAnswer(-1);
        vm.expectRevert(abi.encodeWithSelector(IFixedAggregator.FixedAggregatorNonPositiveAnswer.selector, 0));
        new FixedAggregator(owner, "ETH / USD", 0);
    }

    function test_RevertWhen_SetAnswerNotOwner() external {
        FixedAggregator feed = new FixedAggregator(owner, "ETH / USD", 3000e8);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        feed.setAnswer(1);
    }

    function test_TestMOR() external {
        assertEq(mor.name(), "Test MOR");
        assertEq(mor.symbol(), "MOR");
        assertEq(mor.decimals(), 18);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        mor.mint(eve, 1);
    }

    function testFuzz_Mint(address to, uint256 amount) external {
        vm.assume(to != address(0));
        amount = bound(amount, 0, 1e30);
        uint256 before = mor.balanceOf(to);
        vm.prank(owner);
        mor.mint(to, amount);
        assertEq(mor.balanceOf(to) - before, amount);
    }
}
