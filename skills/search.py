"""``search``: the best matches in this channel's history and the documents in scope,
with their sources, straight from the knowledge base (no model)."""

from __future__ import annotations

from confab.bot.arguments import Arg
from confab.bot.skill import Skill, SkillContext

MAX_QUERY_CHARS = 500
QUOTE_CHARS = 240


class SearchSkill(Skill):
    name = "search"
    uses_model = False
    aliases = ("find",)
    help = "Search this channel's history and the team's documents (no model): best matches."
    arguments = (Arg("words", rest=True, help="what to look for, e.g. deploy day"),)

    async def run(self, ctx: SkillContext) -> None:
        query = " ".join(ctx.options["words"].split())
        if not ctx.knowledge.enabled:
            await ctx.reply("Search is switched off here ([knowledge] enabled = false).")
            return
        found = await ctx.knowledge.search(query[:MAX_QUERY_CHARS])
        if not found:
            await ctx.reply(f"Nothing found for “{query[:80]}” in this channel or its documents.")
            return
        lines = [f"Best matches for “{query[:80]}”:"]
        for number, passage in enumerate(found, start=1):
            lines.append(f"{number}. {await ctx.knowledge.source(passage)}")
            lines.append(f"> {_quote(passage.text)}")
        await ctx.reply("\n".join(lines))


def _quote(text: str) -> str:
    flat = " / ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1].rstrip() + "…"
