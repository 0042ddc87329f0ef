"""The recorded answer shapes, limits and fixed answers of InvenTree 1.4 (API 479), with the
error texts shared by several endpoints."""

from __future__ import annotations

import re
from typing import Any

TOKEN_RE = re.compile(r"^inv-[0-9a-f]{40}-\d{8}$")
STATUS_TEXT = {10: "OK", 50: "Attention needed", 55: "Damaged", 60: "Destroyed", 65: "Rejected", 70: "Lost",
               75: "Quarantined", 85: "Returned"}
# Units the demo templates use, with their factor to the template's base unit.
UNIT_FACTORS = {"g": {"g": 1.0, "kg": 1000.0, "mg": 0.001},
                "s": {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}}
KNOWN_UNITS = {"", "g", "kg", "s", "min", "h", "mm", "m"}
MAX = {"name": 100, "IPN": 100, "description": 250, "batch": 100, "data": 500}
LIST_OMITS = {"price_breaks", "category_path", "parameters", "category_detail", "default_location_detail", "tags"}

PART_SHAPE = {
    "active": True, "assembly": False, "barcode_hash": "", "category": None, "component": True,
    "creation_date": "2026-11-24", "creation_user": 1, "default_expiry": 0, "default_location": None,
    "description": "", "full_name": "", "image": None, "IPN": "", "is_template": False, "keywords": None,
    "link": None, "locked": False, "minimum_stock": 0.0, "name": "", "pk": 0, "purchaseable": True, "revision": "",
    "revision_of": None, "revision_count": None, "salable": False, "starred": False,
    "thumbnail": "/static/img/blank_image.thumbnail.png", "testable": False, "trackable": False, "units": "",
    "variant_of": None, "virtual": False, "pricing_min": None, "pricing_max": None, "pricing_updated": None,
    "responsible": None, "allocated_to_build_orders": None, "allocated_to_sales_orders": None, "building": None,
    "scheduled_to_build": None, "category_default_location": None, "in_stock": None, "ordering": None,
    "required_for_build_orders": None, "required_for_sales_orders": None, "stock_item_count": None,
    "total_in_stock": None, "external_stock": None, "unallocated_stock": None, "variant_stock": None,
    "default_location_detail": None, "tags": [], "parameters": [], "category_path": None, "price_breaks": [],
    "category_detail": None, "notes": None,
}
STOCK_SHAPE = {
    "pk": 0, "part": 0, "quantity": 1.0, "serial": None, "batch": None, "location": None, "belongs_to": None,
    "build": None, "consumed_by": None, "customer": None, "delete_on_deplete": True, "expiry_date": None,
    "in_stock": True, "is_building": False, "link": "", "notes": None, "owner": None, "packaging": None,
    "parent": None, "purchase_order": None, "purchase_order_reference": None, "sales_order": None,
    "sales_order_reference": None, "status": 10, "status_text": "OK", "status_custom_key": 10,
    "supplier_part": None, "SKU": None, "MPN": None, "barcode_hash": "", "updated": "2026-11-24 00:29",
    "stocktake_date": None, "purchase_price": None, "purchase_price_currency": "USD", "allocated": None,
    "expired": None, "installed_items": None, "child_items": None, "stale": None, "part_detail": None,
    "tracking_items": None, "location_detail": None, "location_path": None, "tags": [],
    "supplier_part_detail": None, "tests": [],
}
STOCK_PART_DETAIL_KEYS = ("pk", "IPN", "barcode_hash", "category_default_location", "default_location",
                          "default_expiry", "name", "revision", "full_name", "description", "image", "thumbnail",
                          "active", "locked", "assembly", "component", "minimum_stock", "is_template",
                          "purchaseable", "salable", "testable", "trackable", "virtual", "units", "pricing_min",
                          "pricing_max")
CATEGORY_SHAPE = {"pk": 0, "name": "", "description": "", "default_location": None, "default_keywords": None,
                  "level": 0, "parent": None, "part_count": None, "subcategories": None, "pathstring": "", "path": [],
                  "starred": False, "structural": False, "icon": "", "parent_default_location": None}
LOCATION_SHAPE = {"pk": 0, "barcode_hash": "", "name": "", "level": 0, "description": "", "parent": None,
                  "pathstring": "", "path": [], "owner": None, "icon": "", "custom_icon": None, "structural": False,
                  "external": False, "location_type": None, "location_type_detail": None, "tags": [],
                  "parameters": []}
TEMPLATE_SHAPE = {"pk": 0, "name": "", "units": "", "description": "", "model_type": None, "checkbox": False,
                  "choices": "", "selectionlist": None, "enabled": True}
ROOT = {"server": "InvenTree", "id": None, "version": "1.4.0 dev", "instance": "InvenTree", "apiVersion": 479,
        "worker_running": False, "worker_count": 1, "worker_pending_tasks": 0, "plugins_enabled": False,
        "plugins_install_disabled": True, "email_configured": False, "debug_mode": False, "docker_mode": False,
        "default_locale": "en-us",
        "customize": {"logo": "/static/img/inventree.png", "splash": "/static/img/inventree_splash.jpg",
                      "login_message": None, "navbar_message": None, "disable_theme_storage": False}, "active_plugins": False, "system_health": None,
        "database": None, "platform": None, "installer": None, "target": None, "django_admin": None,
        "settings": {"sso_registration": False, "registration_enabled": False, "password_forgotten_enabled": True}}
USER = {"pk": 1, "username": "admin", "first_name": "", "last_name": "", "email": "admin@example.com", "groups": [],
        "is_staff": True, "is_superuser": True, "is_active": True,
        "profile": {"language": None, "theme": None, "widgets": None, "displayname": None, "position": None,
                    "status": None, "location": None, "active": True, "contact": None, "type": "internal",
                    "organisation": None, "primary_group": None}}


def too_long(field: str) -> str:
    return f"Ensure this field has no more than {MAX[field]} characters."


def invalid_pk(value: Any) -> str:
    return f'Invalid pk "{value}" - object does not exist.'
