from django.test import TestCase

from .models import Item


class ItemTests(TestCase):
    def test_items_are_stored(self) -> None:
        Item.objects.create(name="widget", quantity=3)
        assert Item.objects.get(name="widget").quantity == 3
