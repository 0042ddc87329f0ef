"""The InvenTree stand-in answers the part links the pipeline writes into Bambuddy
(`<web url>/web/part/<pk>/`) with a small HTML page, so the demo's links work in a browser."""

import base64

import requests

from tests.fakes.bambuddy import PNG_1PX as PNG  # a real image: the server verifies uploads


def test_part_link_shows_part_stock_parameters_and_image(inventree):
    api, auth = f"{inventree.base_url}/api", {"Authorization": f"Token {inventree.token}"}
    part = requests.post(f"{api}/part/", headers=auth, timeout=10,
                         data={"name": "Benchy < b > & co", "IPN": "BMB-benchy", "description": "a boat",
                               "category": inventree.ids["INVENTREE_PART_CATEGORY_ID"]},
                         files={"image": ("benchy.png", PNG, "image/png")})
    assert part.status_code == 201, part.text
    pk = part.json()["pk"]
    stock = requests.post(f"{api}/stock/", headers=auth, timeout=10, json={
        "part": pk, "quantity": 1, "batch": "bambuddy-7", "location": inventree.ids["INVENTREE_STOCK_LOCATION_ID"]})
    assert stock.status_code == 201, stock.text
    weight = requests.post(f"{api}/parameter/", headers=auth, timeout=10, json={
        "model_type": "part.part", "model_id": pk, "template": inventree.ids["weight_template"], "data": "12.5"})
    assert weight.status_code == 201, weight.text

    page = requests.get(f"{inventree.base_url}/web/part/{pk}/", timeout=10)  # a browser: no token
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.text
    # "< b >" is text the server stores (transcript 70d); the page shows it escaped, not as markup
    assert "Benchy &lt; b &gt; &amp; co" in text and "BMB-benchy" in text
    assert "bambuddy-7" in text and "Weight" in text and "12.5" in text
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in text
    assert requests.get(f"{inventree.base_url}/web/part/{pk + 99}/", timeout=10).status_code == 404
