"""The Hub's datasets in the published layout: those whose card carries the tag `neurons push`
writes, by the owners a user names or follows, found through huggingface_hub's own listing (one
request per owner, with each card's header), and a register module that makes each one
`--register` away."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from activations.io import hub
from activations.publish.names import HUB_TAG
from activations.publish.upload import HubPushError, push_error

LIMIT = 200  # per owner: a listing of the tag on the whole Hub stays one page


@dataclass
class HubDataset:
    repo_id: str
    last_modified: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    """The card's `glu_neurons` header: model, corpus, layers, neurons, top-k..."""

    @property
    def path(self) -> str:
        return f"hf://datasets/{self.repo_id}"

    @property
    def short_name(self) -> str:
        """Its name in a registry: the repo's name (two owners may push the same model)."""
        return self.repo_id.split("/")[-1].lower()


def hub_datasets(
    authors: list[str] = (), following: str | None = None, search: str | None = None
) -> list[HubDataset]:
    """Datasets tagged as this layout: by `authors`, by the users `following` follows, or (no
    owner named) anyone's; `search` narrows by name."""
    api = hub.api()
    where = f"the Hub's datasets tagged {HUB_TAG}"
    try:
        owners = list(authors)
        if following:
            owners += [user.username for user in api.list_user_following(following)]
        listed = []
        # no owner named: anyone's; owners named (or followed) but none found: nobody's
        for owner in owners if (authors or following) else [None]:
            listed += api.list_datasets(
                filter=HUB_TAG, author=owner, search=search, limit=LIMIT,
                expand=["cardData", "lastModified", "tags"],
            )  # fmt: skip
    except HubPushError:
        raise
    except Exception as error:
        raise _listing_error(where, error) from None
    found: dict[str, HubDataset] = {}
    for info in listed:
        card = info.card_data.to_dict() if info.card_data else {}
        modified = info.last_modified.isoformat() if info.last_modified else None
        found[info.id] = HubDataset(info.id, modified, dict(card.get("glu_neurons") or {}))
    return [found[k] for k in sorted(found)]


def _listing_error(where: str, error: BaseException) -> HubPushError:
    message = str(push_error(where, error))
    return HubPushError(message.split(". Nothing was committed")[0])


def registration_module(datasets: list[HubDataset]) -> str:
    """Python that registers each dataset (and its model, where the card names one) for
    `--register FILE` / `NEURONS_REGISTER`."""
    lines = [
        f'"""Datasets tagged {HUB_TAG} on the Hub, registered by their hf:// paths."""',
        "",
        "from registry import find_model, register_glu_dataset, register_model",
        "",
    ]
    for d in datasets:
        model = d.fields.get("model")
        model_path = d.fields.get("model_path")
        if model and model_path:
            lines += [
                f"if find_model({model!r}) is None:",
                f"    register_model({model!r}, {model_path!r}, "
                f"gguf_file={d.fields.get('gguf_file')!r}, revision={d.fields.get('revision')!r})",
            ]
        lines.append(
            f"register_glu_dataset({d.short_name!r}, {d.path!r}, model={model!r}, "
            f"corpus={d.fields.get('corpus')!r}, user_visible_name={d.repo_id!r})"
        )
    return "\n".join(lines) + "\n"
