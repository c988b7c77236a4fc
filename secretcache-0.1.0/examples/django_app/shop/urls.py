from django.urls import path
from inventory import views

urlpatterns = [path("items/", views.items)]
