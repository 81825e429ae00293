"""What a provider operates, as subqueries the other slices filter their rows by.

Kept apart from `supply.service`, which imports slices (nodes) that would import it back.
"""

from __future__ import annotations

from sqlalchemy import Select, select

from suanwang.supply.models import Pool, Site


def operated_pool_ids(provider_id: int) -> Select[int]:
    """Ids of one provider's pools: the jobs, reservations and usage its operators may see lie on them."""
    return select(Pool.id).join(Site, Site.id == Pool.site_id).where(Site.provider_id == provider_id)
