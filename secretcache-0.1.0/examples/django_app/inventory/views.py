from django.http import HttpRequest, JsonResponse

from .models import Item


def items(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"count": Item.objects.count()})
