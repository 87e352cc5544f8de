"""A capacity provider strategy applied to tasks, as ECS applies one (pure functions).

A strategy is a list of ``{"capacityProvider", "base", "weight"}``: the provider with a base
gets that many tasks first, the rest go in proportion to the weights. RunTask spreads the
tasks of one call; a service's scheduler places each new task where it brings the service's
live tasks closest to the strategy's spread of them all.
"""
from collections import Counter


def spread(strategy, count):
    """The capacity provider of each of ``count`` tasks, as ECS spreads one RunTask call: the base
    first on its provider, the rest in proportion to the weights ("" for each when no strategy)."""
    if not strategy:
        return [""] * count
    chosen = []
    for item in strategy:
        chosen += [item["capacityProvider"]] * min(item["base"], count - len(chosen))
    weighted = [item for item in strategy if item["weight"] > 0]
    placed = dict.fromkeys((item["capacityProvider"] for item in weighted), 0)
    while len(chosen) < count:
        item = min(weighted, key=lambda i: (placed[i["capacityProvider"]] + 1) / i["weight"])
        placed[item["capacityProvider"]] += 1
        chosen.append(item["capacityProvider"])
    return chosen


def fill(strategy, live, count):
    """The capacity providers of ``count`` new tasks of a service whose live tasks run on ``live``
    (their providers): each goes where the strategy's spread of all the tasks has one more than
    now run there ([] when no strategy: the FARGATE launch type)."""
    if not strategy:
        return []
    order = [item["capacityProvider"] for item in strategy]
    now = Counter(provider for provider in live if provider in order)
    chosen = []
    for _ in range(count):
        wanted = Counter(spread(strategy, sum(now.values()) + 1))
        provider = max(order, key=lambda p: (wanted[p] - now[p], -order.index(p)))
        now[provider] += 1
        chosen.append(provider)
    return chosen
