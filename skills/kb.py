"""``kb``: the documents the bot answers from here. Everyone can list them; admins add
a file attached to the message (``kb add``, ``kb add everywhere``) and remove one."""

from __future__ import annotations

from confab.bot.skill import Skill, SkillContext

USAGE = (
    "`{p}kb` lists the documents I answer from here; admins: `{p}kb add` with a file "
    "attached (Markdown, text, HTML or PDF) adds it for this channel, "
    "`{p}kb add everywhere` for every channel, `{p}kb remove <name>` removes one."
)


class KnowledgeSkill(Skill):
    name = "kb"
    uses_model = False
    help = "List the documents I answer from here; admins add (attach a file) or remove them."
    usage = "[add [everywhere] | remove <name>]"
    admin_commands = ("add", "remove")

    async def run(self, ctx: SkillContext) -> None:
        words = ctx.args.split(maxsplit=1)
        action = words[0].lower() if words else "list"
        rest = words[1].strip() if len(words) > 1 else ""
        if not ctx.knowledge.enabled:
            await ctx.reply(
                "The knowledge base is switched off here ([knowledge] enabled = false)."
            )
        elif action == "list" and not rest:
            await self._list(ctx)
        elif action == "add" and rest.lower() in ("", "everywhere"):
            lines = await ctx.knowledge.add_attachment(everywhere=rest.lower() == "everywhere")
            await ctx.reply("\n".join(lines))
        elif action == "remove" and rest:
            removed = await ctx.knowledge.remove(rest)
            if removed:
                names = ", ".join(doc.name for doc in removed)
                await ctx.reply(f"Removed {names}: I no longer answer from it.")
            else:
                await ctx.reply(
                    f"No document called {rest!r} answers here; `{ctx.prefix}kb` lists them."
                )
        else:
            await ctx.reply("Usage: " + USAGE.format(p=ctx.prefix))

    async def _list(self, ctx: SkillContext) -> None:
        documents = await ctx.knowledge.documents()
        if not documents:
            admins = USAGE.format(p=ctx.prefix).split("; ", 1)[1]
            await ctx.reply(f"No documents answer here yet. A{admins[1:]}")
            return
        lines = [f"Documents I answer from here ({len(documents)}):"]
        for doc in documents:
            scope = "everywhere" if doc.channels is None else "this channel"
            lines.append(f"- {doc.name}: {doc.title}, {doc.chunks} passages ({scope})")
        await ctx.reply("\n".join(lines))
