from service.ids import new_id


def test_ids_are_prefixed_fixed_width_and_sort_by_creation():
    ids = [new_id("msg_") for _ in range(2000)]
    assert all(i.startswith("msg_") and len(i) == 28 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
