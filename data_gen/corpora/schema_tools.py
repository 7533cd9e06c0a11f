"""Writes chat-format training texts for schema-driven tool use in the hermes dialect, with simulated tool results.

Each text is one conversation in the model's chat template: the system message offering several tools the hermes
dialect's way (its `prompt()`), a user request, the assistant's `<tool_call>` block(s), the `<tool_response>` block(s)
the dialect writes for the results, and the assistant's answer. Three kinds: one call of the right tool among
distractors ("single"), several calls in one reply ("parallel"), and a request no offered tool fits, answered
without a call ("none"). Tools are made from the schemas below (written for toolcall: no text from any data set)
across many domains and argument types - strings, integers, numbers, enums, booleans, arrays, nested objects, optional
parameters - and each is renamed per text (verb synonyms, naming styles), so a model learns to read the schema, not a
name. A tool's behaviour is simulated from its schema: its result fields are drawn from a generator seeded by the
call itself, so the same call always gets the same result. `leak_report()` measures word n-gram overlap with the
BFCL data (bfcl-eval, when installed), which is an evaluation set and must not leak into training.

    python -m toolcall.data_gen.corpora.schema_tools --out DIR [--count 2000] [--seed 0] [--mix v2|v1|v3|v4|v5|v6] [--model PATH] [--fake-chat] [--force]

writes DIR/train.jsonl ({"id", "kind", "domain", "text", "prompt_chars", "tools", "calls"}) and DIR/leak.json
(refusing a DIR that already holds them unless --force).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from random import Random
from typing import Any

from toolcall.calls import KeywordArgs, ToolCall
from toolcall.dialects import get_dialect
from toolcall.errors import ToolcallError
from toolcall.specs import ToolSpec, ToolSpecs
from toolcall.terminal import printable

from .output import check_out

ChatFn = Callable[..., str]


# ----------------------------------------------------------------------------------------------- schemas
@dataclass(frozen=True)
class Param:
    """One parameter: its JSON type, what it means, and the values a request may give it.

    `kind` is string, integer, number, boolean, enum, array (of `items`) or object (of `fields`). A request template
    names it as `{name}`; a boolean is given only by its `phrase` (the value is then true); an object is said as its
    `phrase` with its fields filled in. Optional parameters appear in a call exactly when the request names them.
    A `fraction` number is said as a percentage ("5%", the sign included) and called as the fraction its description
    asks for (0.05). A value in `spoken` is said in its everyday words and called as the code its description asks for
    ("British pounds" -> "GBP", "Tokyo" -> "Asia/Tokyo").
    """

    name: str
    kind: str
    description: str
    values: tuple[Any, ...] = ()
    required: bool = True
    items: str = "string"
    fields: tuple["Param", ...] = ()
    phrase: str = ""
    fraction: bool = False  # a number the call gives as a fraction of one (0.05) and a request says in percent (5)
    spoken: tuple[tuple[Any, str], ...] = ()  # (value as called, as a request says it)

    def schema(self) -> dict[str, Any]:
        if self.kind == "enum":
            return {"type": "string", "enum": list(self.values), "description": self.description}
        if self.kind == "array":
            return {"type": "array", "items": {"type": self.items}, "description": self.description}
        if self.kind == "object":
            return {"type": "object", "description": self.description,
                    "properties": {f.name: f.schema() for f in self.fields},
                    "required": [f.name for f in self.fields if f.required]}
        return {"type": self.kind, "description": self.description}


@dataclass(frozen=True)
class Template:
    """A tool as schema, requests, the fields its result has, and how an answer reads them."""

    domain: str
    verb: str                      # the action, renamed per text from VERBS
    noun: str                      # what it acts on: the name is verb + noun
    description: str
    params: tuple[Param, ...]
    requests: tuple[str, ...]      # user requests with {param} slots
    returns: tuple[tuple[str, str, tuple[Any, ...]], ...]  # (field, kind, pool): simulated result fields
    answer: str                    # the answer with {param} and {result field} slots

    def parameters(self) -> dict[str, Any]:
        return {"type": "object", "properties": {p.name: p.schema() for p in self.params},
                "required": [p.name for p in self.params if p.required]}


def P(name: str, kind: str, description: str, values: Iterable[Any] = (), *, required: bool = True,
      items: str = "string", fields: Sequence[Param] = (), phrase: str = "", fraction: bool = False,
      spoken: Mapping[Any, str] | None = None) -> Param:
    """A parameter; with `spoken`, its values are the mapping's keys and a request says each as its value."""
    if spoken:
        values = tuple(spoken)
    return Param(name, kind, description, tuple(values), required, items, tuple(fields), phrase, fraction,
                 tuple((spoken or {}).items()))


def T(domain: str, verb: str, noun: str, description: str, params: Sequence[Param], requests: Sequence[str],
      returns: Sequence[tuple[str, str, Iterable[Any]]], answer: str) -> Template:
    return Template(domain, verb, noun, description, tuple(params), tuple(requests),
                    tuple((f, k, tuple(pool)) for f, k, pool in returns), answer)


# Word lists (written for toolcall).
TOWNS = ("Lisbon", "Oslo", "Nairobi", "Montreal", "Kyoto", "Valparaiso", "Tbilisi", "Hobart", "Marrakesh", "Tallinn",
         "Cusco", "Da Nang", "Ghent", "Windhoek", "Reykjavik", "Porto Alegre")
PEOPLE = ("Ada Moreno", "Bilal Haddad", "Chen Wei", "Dara Okafor", "Eliska Novak", "Femi Adeyemi", "Greta Lind",
          "Hiro Tanaka", "Ines Duarte", "Jakub Wozniak", "Kamala Iyer", "Lars Berg")
COLOURS = ("teal", "amber", "crimson", "ivory", "olive", "navy")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DATES = ("2027-03-14", "2027-05-02", "2027-06-21", "2027-08-09", "2027-10-30", "2027-12-05")
STREETS = ("12 Harbour Lane", "7 Birch Row", "230 Quarry Road", "45 Mill Street", "9 Orchard Close")
POSTCODES = ("40213", "11870", "73004", "52190", "90817")

TEMPLATES: tuple[Template, ...] = (
    # weather and outdoors
    T("weather", "get", "outlook", "Weather outlook for a town over the coming days.",
      [P("town", "string", "Town to forecast for.", TOWNS),
       P("days", "integer", "How many days ahead, 1 to 7.", range(1, 8), required=False),
       P("units", "enum", "Temperature scale of the reply.", ("celsius", "fahrenheit"), required=False)],
      ["What is the weather outlook for {town}?", "Outlook for {town}, {days} days ahead.",
       "How warm will {town} be over {days} days? Answer in {units}.", "Is it going to rain in {town}?"],
      [("high", "integer", range(-5, 36)), ("low", "integer", range(-15, 20)),
       ("sky", "string", ("clear", "cloudy", "showers", "snow", "fog"))],
      "In {town}: a high of {high}, a low of {low}, {sky}."),
    T("weather", "get", "tide_times", "High and low tide times at a harbour on a date.",
      [P("harbour", "string", "Harbour town.", TOWNS), P("date", "string", "Day in YYYY-MM-DD form.", DATES)],
      ["When are the tides in {harbour} on {date}?", "Tide times for {harbour}, {date}."],
      [("high_tide", "string", ("04:12", "06:40", "09:05", "11:58")),
       ("low_tide", "string", ("10:20", "12:51", "15:17", "18:03"))],
      "On {date} in {harbour}, high tide is at {high_tide} and low tide at {low_tide}."),
    T("outdoors", "find", "hiking_trails", "Trails near a town, filtered by difficulty and length.",
      [P("near", "string", "Town the trails start near.", TOWNS),
       P("difficulty", "enum", "How hard the trail is.", ("easy", "moderate", "hard"), required=False),
       P("max_km", "number", "Longest trail length in kilometres.", (5.5, 8.0, 12.5, 20.0), required=False)],
      ["Find hiking trails near {near}.", "Any {difficulty} trails near {near}?",
       "I want a {difficulty} hike near {near} of at most {max_km} km."],
      [("trail", "string", ("Ridge Loop", "Fern Gully", "Old Quarry Path", "Lighthouse Walk")),
       ("length_km", "number", (3.2, 6.8, 9.4, 14.1))],
      "Try the {trail} near {near}: {length_km} km."),
    # travel
    T("travel", "search", "trains", "Train connections between two towns on a day.",
      [P("origin", "string", "Departure town.", TOWNS), P("destination", "string", "Arrival town.", TOWNS),
       P("date", "string", "Travel day, YYYY-MM-DD.", DATES),
       P("seat_class", "enum", "Class of travel.", ("first", "second"), required=False)],
      ["Trains from {origin} to {destination} on {date}?", "Find me a {seat_class} class train from {origin} to "
       "{destination} on {date}."],
      [("departs", "string", ("07:15", "09:42", "13:05", "17:30")), ("fare", "number", (18.5, 42.0, 63.9, 97.25))],
      "A train leaves {origin} for {destination} at {departs} on {date}; the fare is {fare}."),
    T("travel", "book", "hotel_room", "Hold a room at a hotel in some town for N nights.",
      [P("town", "string", "Town of the hotel.", TOWNS), P("check_in", "string", "Arrival day, YYYY-MM-DD.", DATES),
       P("nights", "integer", "Number of nights.", range(1, 9)),
       P("guests", "integer", "People staying.", range(1, 5), required=False),
       P("breakfast", "boolean", "Whether breakfast is included.", required=False, phrase="with breakfast")],
      ["Get me a room in {town} from {check_in}, {nights} nights.",
       "Reserve a room in {town} for {guests} guests, {nights} nights from {check_in}, {breakfast}."],
      [("confirmation", "string", ("HX-2291", "HX-4410", "HX-7832", "HX-9057")),
       ("total_price", "number", (210.0, 388.5, 512.75, 940.0))],
      "Booked in {town} for {nights} nights from {check_in}: confirmation {confirmation}, {total_price} in total."),
    T("travel", "convert", "money_amount", "Change a sum of money into another currency at the current rate.",
      [P("amount", "number", "Amount to convert.", (12.5, 40.0, 99.99, 250.0, 1200.0)),
       P("from_code", "enum", "Currency of the amount.", ("EUR", "USD", "JPY", "NOK", "KES")),
       P("to_code", "enum", "Currency wanted.", ("EUR", "USD", "JPY", "NOK", "KES"))],
      ["How much is {amount} {from_code} in {to_code}?", "Convert {amount} {from_code} to {to_code}."],
      [("converted", "number", (11.3, 37.85, 104.2, 6120.0, 1377.4))],
      "{amount} {from_code} is {converted} {to_code}."),
    # food
    T("food", "find", "eateries", "Places to eat in a town, by cuisine and price level.",
      [P("town", "string", "Town to search.", TOWNS),
       P("cuisine", "enum", "Kind of food.", ("thai", "ethiopian", "peruvian", "georgian", "vegan")),
       P("price_level", "integer", "1 (cheap) to 4 (expensive).", range(1, 5), required=False),
       P("open_now", "boolean", "Only places open at this moment.", required=False, phrase="that is open right now")],
      ["Find a {cuisine} restaurant in {town}.", "I want {cuisine} food in {town} {open_now}.",
       "Look for {cuisine} places in {town} at price level {price_level}."],
      [("restaurant", "string", ("Casa Verde", "The Copper Pot", "Lemongrass House", "Saffron Yard")),
       ("rating", "number", (3.9, 4.2, 4.6, 4.8))],
      "{restaurant} serves {cuisine} food in {town}; it is rated {rating}."),
    T("food", "scale", "recipe", "Rescale a recipe's ingredient amounts to a number of servings.",
      [P("recipe", "string", "Recipe title.", ("lentil soup", "banana bread", "paella", "flatbread", "dal")),
       P("servings", "integer", "Servings wanted.", range(2, 13)),
       P("ingredients", "array", "Ingredients to list, all when omitted.", ("flour", "rice", "onion", "butter",
                                                                         "lentils", "salt"), required=False)],
      ["Scale the {recipe} recipe to {servings} servings.", "How much {ingredients} do I need for {recipe} for "
       "{servings} people?"],
      [("grams", "integer", range(40, 900, 15))],
      "For {servings} servings of {recipe} you need {grams} grams."),
    # money
    T("finance", "get", "share_price", "Latest price of a listed company's share.",
      [P("ticker", "string", "Exchange ticker symbol.", ("NRDQ", "HVLT", "ORBX", "KELP", "TAMR")),
       P("exchange", "enum", "Where it trades.", ("NYSE", "NASDAQ", "LSE", "TSE"), required=False)],
      ["What is {ticker} trading at?", "Share price of {ticker} on the {exchange}?"],
      [("price", "number", (14.22, 87.1, 132.65, 409.9)), ("change_pct", "number", (-2.4, -0.3, 0.8, 3.1))],
      "{ticker} is at {price} ({change_pct}% today)."),
    T("finance", "calculate", "loan_payment", "Monthly payment of a fixed-rate loan.",
      [P("principal", "number", "Amount borrowed.", (5000.0, 18000.0, 250000.0, 42000.0)),
       P("annual_rate", "number", "Yearly interest rate in percent.", (3.5, 4.25, 6.0, 7.9)),
       P("years", "integer", "Loan term, in years.", (3, 5, 10, 25, 30))],
      ["Monthly payment on {principal} at {annual_rate}% over {years} years?",
       "If I borrow {principal} for {years} years at {annual_rate} percent, what do I pay each month?"],
      [("monthly_payment", "number", (96.4, 412.8, 1121.37, 1580.02))],
      "You would pay {monthly_payment} a month."),
    T("finance", "split", "bill", "Split a bill among people with a tip.",
      [P("total", "number", "Bill total.", (48.6, 120.0, 233.4, 76.25)),
       P("people", "integer", "How many share it.", range(2, 9)),
       P("tip_percent", "integer", "Tip in percent.", (0, 10, 12, 15, 20), required=False)],
      ["Split {total} between {people} people.", "We are {people}, the bill is {total} and we tip {tip_percent}%; "
       "what does each pay?"],
      [("each", "number", (13.1, 24.3, 40.85, 61.0))],
      "Each of the {people} pays {each}."),
    # shopping and parcels
    T("shopping", "track", "parcel", "Where a parcel is, from its tracking number.",
      [P("tracking_number", "string", "The carrier's tracking number.", ("ZQ8812345", "LP0098211", "TR5550173")),
       P("carrier", "enum", "Delivery company.", ("swiftpost", "parcelhop", "greenvan"), required=False)],
      ["Where is my parcel {tracking_number}?", "Track {tracking_number} with {carrier}."],
      [("status", "string", ("in transit", "out for delivery", "delivered", "held at depot")),
       ("eta", "string", DATES)],
      "Parcel {tracking_number} is {status}; expected {eta}."),
    T("shopping", "create", "order", "Place an order for products to a delivery address.",
      [P("products", "array", "Product codes to order.", ("SKU-118", "SKU-204", "SKU-377", "SKU-590", "SKU-612")),
       P("address", "object", "Where to deliver.", fields=(
           P("street", "string", "Street and number.", STREETS), P("town", "string", "Town.", TOWNS),
           P("postcode", "string", "Postal code.", POSTCODES)), phrase="{street}, {postcode} {town}"),
       P("gift_wrap", "boolean", "Wrap the items as a gift.", required=False, phrase="gift-wrapped")],
      ["Order {products} to {address}.", "Please send {products} to {address}, {gift_wrap}."],
      [("order_id", "string", ("ORD-31877", "ORD-40022", "ORD-58410")), ("total", "number", (19.9, 64.5, 143.0))],
      "Order {order_id} is placed: {total} in total."),
    # health
    T("health", "log", "workout", "Record a workout in the training diary.",
      [P("activity", "enum", "Kind of exercise.", ("running", "cycling", "swimming", "rowing", "yoga")),
       P("minutes", "integer", "Duration in minutes.", (20, 30, 45, 60, 90)),
       P("distance_km", "number", "Distance covered, if any.", (2.5, 5.0, 10.0, 21.1), required=False)],
      ["Log {minutes} minutes of {activity}.", "Record my {activity}: {minutes} minutes, {distance_km} km."],
      [("calories", "integer", range(90, 950, 7)), ("entry_id", "integer", range(1000, 9999))],
      "Logged {minutes} minutes of {activity}: about {calories} kcal."),
    T("health", "compute", "body_mass_index", "Body mass index from height and weight.",
      [P("height_cm", "number", "Height in centimetres.", (158.0, 165.5, 172.0, 181.0, 190.5)),
       P("weight_kg", "number", "Weight in kilograms.", (52.0, 61.5, 74.0, 88.2, 97.0))],
      ["What is the BMI of someone {height_cm} cm tall weighing {weight_kg} kg?",
       "Compute my body mass index: {height_cm} cm and {weight_kg} kg."],
      [("bmi", "number", (19.4, 22.1, 24.9, 27.3, 30.2))],
      "The BMI is {bmi}."),
    # home
    T("home", "set", "thermostat", "Set the heating target in a room of the house.",
      [P("room", "enum", "Room of the thermostat.", ("kitchen", "bedroom", "office", "living room")),
       P("target", "number", "Temperature wanted, in degrees.", (18.0, 19.5, 21.0, 22.5)),
       P("until", "string", "Time the setting lasts until, HH:MM.", ("07:00", "18:30", "23:00"), required=False)],
      ["Set the {room} to {target} degrees.", "Warm the {room} to {target} until {until}."],
      [("previous", "number", (16.5, 17.0, 20.0, 23.5))],
      "The {room} is set to {target} (it was {previous})."),
    T("home", "add", "shopping_list_items", "Add items to a shared shopping list.",
      [P("items", "array", "What to add.", ("oat milk", "lemons", "rye bread", "coffee", "eggs", "rice")),
       P("list_name", "string", "Which list.", ("weekly", "party", "camping"), required=False)],
      ["Add {items} to the shopping list.", "Put {items} on the {list_name} list."],
      [("count", "integer", range(3, 25))],
      "Added; the list now has {count} items."),
    # media
    T("media", "search", "podcasts", "Podcast episodes about a topic, newest first.",
      [P("topic", "string", "Subject to look for.", ("beekeeping", "jazz history", "urban cycling", "volcanoes",
                                                     "chess openings")),
       P("max_results", "integer", "Most episodes to return.", (3, 5, 10), required=False),
       P("language", "enum", "Spoken language.", ("english", "spanish", "french"), required=False)],
      ["Find podcasts about {topic}.", "Give me {max_results} podcast episodes on {topic} in {language}."],
      [("episode", "string", ("Ep. 41: The Long View", "Ep. 7: Starting Out", "Ep. 102: Ask Us Anything")),
       ("minutes", "integer", (22, 38, 55, 71))],
      "Try \"{episode}\" ({minutes} min) about {topic}."),
    T("media", "create", "playlist", "Make a playlist from songs, public or private.",
      [P("title", "string", "Playlist title.", ("Rainy Sunday", "Road Trip", "Deep Focus", "Kitchen Dance")),
       P("songs", "array", "Song titles.", ("Blue Hour", "Paper Boats", "Night Market", "Low Tide", "Firefly")),
       P("public", "boolean", "Whether others may see it.", required=False, phrase="and make it public")],
      ["Make a playlist called {title} with {songs}.", "Create {title} from {songs} {public}."],
      [("playlist_id", "string", ("PL-0415", "PL-2288", "PL-7301"))],
      "Playlist {title} is ready ({playlist_id})."),
    # work and calendar
    T("work", "schedule", "meeting", "Put a meeting in the calendar with attendees.",
      [P("subject", "string", "What it is about.", ("budget review", "design sync", "onboarding", "retro")),
       P("day", "enum", "Weekday.", DAYS[:5]), P("start", "string", "Start time, HH:MM.", ("09:00", "11:30",
                                                                                          "14:00", "16:15")),
       P("attendees", "array", "People invited.", PEOPLE),
       P("minutes", "integer", "Length in minutes.", (15, 30, 45, 60), required=False)],
      ["Schedule a {subject} on {day} at {start} with {attendees}.",
       "Set up a {minutes}-minute {subject} with {attendees} on {day} at {start}."],
      [("event_id", "string", ("EV-118", "EV-342", "EV-977")), ("room", "string", ("Aspen", "Birch", "Cedar"))],
      "The {subject} is booked for {day} at {start} in room {room}."),
    T("work", "read", "town_clock", "Local time and UTC offset of a town now.",
      [P("town", "string", "Town whose clock is read.", TOWNS),
       P("hour_format", "enum", "Clock style.", ("24h", "12h"), required=False)],
      ["What time is it in {town}?", "Current time in {town}, {hour_format} clock?"],
      [("local_time", "string", ("06:05", "11:47", "15:20", "22:38")), ("utc_offset", "string", ("+01:00", "-04:00",
                                                                                              "+09:00", "+03:00"))],
      "It is {local_time} in {town} (UTC{utc_offset})."),
    # learning and science
    T("science", "get", "planet_facts", "Facts about a planet of the solar system.",
      [P("planet", "enum", "The planet.", ("Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Neptune")),
       P("fields", "array", "Facts wanted.", ("moons", "day_length", "gravity", "radius"), required=False)],
      ["Tell me about {planet}.", "What are the {fields} of {planet}?"],
      [("moons", "integer", (0, 2, 16, 95, 146)), ("gravity", "number", (3.7, 8.87, 11.15, 24.79))],
      "{planet} has {moons} moons and a surface gravity of {gravity} m/s2."),
    T("science", "convert", "units", "Convert a measurement between units of the same kind.",
      [P("value", "number", "The measurement.", (3.0, 12.5, 100.0, 0.75, 42.0)),
       P("from_unit", "enum", "Its unit.", ("miles", "kilometres", "pounds", "kilograms", "litres", "gallons")),
       P("to_unit", "enum", "Unit wanted.", ("miles", "kilometres", "pounds", "kilograms", "litres", "gallons"))],
      ["Convert {value} {from_unit} to {to_unit}.", "How many {to_unit} is {value} {from_unit}?"],
      [("result", "number", (1.86, 4.83, 20.12, 45.36, 160.93))],
      "{value} {from_unit} is {result} {to_unit}."),
    T("education", "enrol", "course", "Sign a student up for a course section.",
      [P("student_id", "integer", "Student number.", range(20001, 20999, 37)),
       P("course_code", "string", "Course code.", ("BIO-210", "HIS-105", "MAT-320", "ART-118")),
       P("section", "enum", "Section letter.", ("A", "B", "C"), required=False)],
      ["Enrol student {student_id} in {course_code}.", "Put student {student_id} into section {section} of "
       "{course_code}."],
      [("seat", "integer", range(1, 40)), ("waitlisted", "boolean", (False, True))],
      "Student {student_id} is enrolled in {course_code}, seat {seat}."),
    # pets, garden, vehicles
    T("pets", "book", "vet_visit", "Book a vet appointment for a pet.",
      [P("pet_name", "string", "The pet's name.", ("Biscuit", "Juno", "Pepper", "Otto", "Mochi")),
       P("species", "enum", "Kind of animal.", ("dog", "cat", "rabbit", "parrot")),
       P("reason", "string", "Why it is coming.", ("vaccination", "limping", "check-up", "dental cleaning")),
       P("day", "enum", "Preferred weekday.", DAYS[:6], required=False)],
      ["Book a vet visit for my {species} {pet_name}: {reason}.", "Can {pet_name}, my {species}, see the vet on "
       "{day} for a {reason}?"],
      [("slot", "string", ("08:40", "10:10", "13:20", "15:50")), ("vet", "string", ("Dr. Alvarez", "Dr. Sato"))],
      "{pet_name} sees {vet} at {slot}."),
    T("garden", "plan", "planting", "When to sow a crop in a climate zone.",
      [P("crop", "string", "What to grow.", ("tomatoes", "garlic", "peas", "kale", "pumpkins")),
       P("zone", "integer", "Hardiness zone, 1 to 13.", range(3, 11)),
       P("indoors", "boolean", "Start seeds indoors.", required=False, phrase="starting indoors")],
      ["When should I plant {crop} in zone {zone}?", "Plan {crop} for zone {zone}, {indoors}."],
      [("sow_month", "string", ("February", "March", "April", "May", "September")),
       ("harvest_weeks", "integer", (8, 10, 14, 20, 32))],
      "In zone {zone}, sow {crop} in {sow_month}; harvest after about {harvest_weeks} weeks."),
    T("vehicles", "estimate", "fuel_cost", "Fuel cost of a trip from distance and consumption.",
      [P("distance_km", "number", "Trip length in kilometres.", (85.0, 240.0, 512.0, 1300.0)),
       P("litres_per_100km", "number", "Car's consumption.", (4.8, 6.2, 7.5, 9.1)),
       P("price_per_litre", "number", "Fuel price.", (1.62, 1.79, 1.95), required=False)],
      ["What will {distance_km} km cost in fuel at {litres_per_100km} l/100km?",
       "Fuel cost for {distance_km} km, {litres_per_100km} l/100km, fuel at {price_per_litre} a litre?"],
      [("cost", "number", (7.3, 26.9, 72.4, 210.6)), ("litres", "number", (4.1, 15.0, 38.4, 118.3))],
      "The trip uses {litres} litres, about {cost} in fuel."),
    T("vehicles", "check", "charging_stations", "Electric car chargers near a place with a connector type.",
      [P("near", "string", "Place to search around.", TOWNS),
       P("connector", "enum", "Plug type.", ("CCS", "CHAdeMO", "Type 2")),
       P("min_kw", "integer", "Lowest charging power in kW.", (22, 50, 150), required=False)],
      ["Where can I charge with {connector} near {near}?", "Find {connector} chargers of at least {min_kw} kW "
       "near {near}."],
      [("station", "string", ("Harbour Car Park", "Northgate Mall", "Station Square")),
       ("free_points", "integer", (0, 1, 2, 4, 6))],
      "{station} near {near} has {free_points} free {connector} points."),
    # games and sport
    T("sport", "get", "match_score", "Score of a team's latest match.",
      [P("team", "string", "Team name.", ("Harbour Rovers", "Valley United", "Northside Owls", "Red Lanterns")),
       P("sport", "enum", "Which sport.", ("football", "basketball", "hockey", "rugby"), required=False)],
      ["How did {team} do in their last game?", "Latest {sport} score for {team}?"],
      [("score", "string", ("2-1", "0-0", "3-4", "98-91")), ("opponent", "string", ("Lake City", "Westport"))],
      "{team} played {opponent}: {score}."),
    T("games", "roll", "dice", "Roll dice with a number of sides.",
      [P("count", "integer", "How many dice.", range(1, 7)),
       P("sides", "integer", "Sides on each die.", (4, 6, 8, 12, 20))],
      ["Roll {count} dice with {sides} sides.", "Throw {count}d{sides} for me."],
      [("total", "integer", range(1, 60))],
      "You rolled {total}."),
    # text and documents
    T("documents", "count", "document_words", "Word and page count of a stored document.",
      [P("document_id", "string", "Stored document id.", ("DOC-5521", "DOC-1187", "DOC-9043")),
       P("include_appendix", "boolean", "Count the appendix too.", required=False, phrase="appendix included")],
      ["How long is {document_id}?", "Count the words in {document_id}, {include_appendix}."],
      [("words", "integer", range(900, 24000, 113)), ("pages", "integer", range(3, 80))],
      "{document_id} has {words} words on {pages} pages."),
    T("messaging", "send", "text_message", "Send a text message to a contact.",
      [P("to", "string", "Contact name.", PEOPLE),
       P("body", "string", "Message text.", ("running ten minutes late", "dinner at eight?", "call me back",
                                             "the keys are under the mat")),
       P("urgent", "boolean", "Mark as urgent.", required=False, phrase="and flag it urgent")],
      ["Text {to}: {body}.", "Send {to} the message '{body}' {urgent}."],
      [("message_id", "string", ("MSG-3021", "MSG-7744", "MSG-9910")), ("delivered", "boolean", (True,))],
      "Sent to {to}."),
)

ELEMENTS = ("Fe", "Cu", "Na", "Cl", "Au", "Ne", "Si", "K")
SPECIES = ("red fox", "snow leopard", "blue whale", "honey bee", "emperor penguin", "sea otter")

# The second mix's extra schemas: numbers, formulas and facts, the kind of tool a science or maths assistant offers.
MORE_TEMPLATES: tuple[Template, ...] = (
    T("geometry", "compute", "polygon_area", "Surface inside an equal-sided figure, from how many sides it has and how long each is.",
      [P("sides", "integer", "Number of equal sides, 3 or more.", range(3, 13)),
       P("side_length", "number", "Length of one side in metres.", (1.5, 2.0, 4.2, 7.0, 10.0))],
      ["A regular shape has {sides} equal sides of {side_length} m each; how big is it?",
       "Area of a regular {sides}-sided figure whose sides are {side_length} metres long."],
      [("area", "number", (3.9, 10.83, 27.5, 76.94, 150.3))],
      "That polygon covers {area} square metres."),
    T("geometry", "compute", "cylinder_volume", "Volume held by a cylinder of a given radius and height.",
      [P("radius", "number", "Radius of the base, in centimetres.", (2.0, 3.5, 5.0, 12.0)),
       P("height", "number", "Height, in centimetres.", (4.0, 10.0, 25.0, 60.0)),
       P("unit", "enum", "Unit of the reply.", ("cm3", "litres"), required=False)],
      ["How much does a cylinder with radius {radius} cm and height {height} cm hold?",
       "Volume of a can {height} cm high with a {radius} cm radius, in {unit}?"],
      [("volume", "number", (50.27, 384.85, 1963.5, 27143.4))],
      "It holds {volume} {unit}."),
    T("physics", "estimate", "travel_duration", "Hours a trip takes when the speed stays constant.",
      [P("distance_km", "number", "Distance in kilometres.", (12.0, 85.0, 240.0, 1020.0)),
       P("speed_kmh", "number", "Speed in kilometres per hour.", (15.0, 60.0, 90.0, 120.0))],
      ["How long does {distance_km} km take at {speed_kmh} km/h?",
       "At a steady {speed_kmh} km per hour, how many hours for {distance_km} kilometres?"],
      [("hours", "number", (0.2, 1.4, 2.67, 8.5, 68.0))],
      "It takes {hours} hours."),
    T("physics", "compute", "drop_impact", "Landing speed and seconds of fall for something let go from a height, without drag.",
      [P("drop_height", "number", "Height it falls from, in metres.", (1.2, 5.0, 20.0, 45.0, 100.0)),
       P("planet", "enum", "Where it falls.", ("Earth", "Moon", "Mars"), required=False)],
      ["An object falls from {drop_height} m. How fast is it when it lands?",
       "Fall time and landing speed from {drop_height} metres on {planet}?"],
      [("speed", "number", (4.85, 9.9, 19.81, 29.71, 44.29)), ("seconds", "number", (0.49, 1.01, 2.02, 3.03, 4.52))],
      "It lands after {seconds} s at {speed} m/s."),
    T("chemistry", "get", "element_data", "Atomic number and standard atomic weight of a chemical element.",
      [P("symbol", "enum", "The element's symbol.", ELEMENTS),
       P("include_isotopes", "boolean", "List its stable isotopes too.", required=False,
         phrase="with its stable isotopes")],
      ["What is the atomic weight of {symbol}?", "Give me the data on {symbol} {include_isotopes}."],
      [("atomic_number", "integer", (10, 11, 14, 17, 19, 26, 29, 79)),
       ("atomic_weight", "number", (20.18, 22.99, 28.09, 35.45, 39.1, 55.85, 63.55, 196.97))],
      "{symbol} has atomic number {atomic_number} and weighs {atomic_weight}."),
    T("math", "find", "prime_factors", "Break a whole number into its prime factors.",
      [P("number", "integer", "The number to factor, at least 2.", (84, 360, 1001, 4096, 9699))],
      ["Break {number} down into primes, please.", "Factor {number} into primes."],
      [("factors", "string", ("2 x 2 x 3 x 7", "2 x 2 x 2 x 3 x 3 x 5", "7 x 11 x 13", "3 x 53 x 61"))],
      "{number} = {factors}."),
    T("math", "summarise", "number_list", "Mean, median or spread of a list of numbers.",
      [P("values", "array", "The numbers.", (3.5, 7.0, 12.0, 18.25, 21.0, 40.0), items="number"),
       P("measure", "enum", "Which figure to return.", ("mean", "median", "spread"), required=False)],
      ["What is the {measure} of {values}?", "Summarise these numbers: {values}."],
      [("value", "number", (7.0, 11.5, 14.08, 19.6))],
      "The {measure} is {value}."),
    T("math", "solve", "second_degree_roots", "Real roots of a x^2 + b x + c = 0.",
      [P("a", "integer", "Coefficient of x squared, not zero.", (1, 2, 3, -1)),
       P("b", "integer", "Coefficient of x.", (-7, -4, 0, 5, 6)),
       P("c", "integer", "Constant term.", (-12, -3, 0, 2, 8))],
      ["Find x when {a}x^2 + {b}x + {c} = 0.", "Roots of the quadratic with a={a}, b={b}, c={c}?"],
      [("roots", "string", ("x = 2 or x = -6", "x = 0.5 or x = -3", "no real roots", "x = 4"))],
      "The roots: {roots}."),
    T("math", "convert", "number_base", "Write a whole number in another base.",
      [P("number", "integer", "The number, in base 10.", (19, 255, 1000, 4242)),
       P("base", "integer", "Base to write it in: 2, 8 or 16.", (2, 8, 16))],
      ["Write {number} in base {base}.", "What is {number} in base {base}?"],
      [("digits", "string", ("10011", "377", "3E8", "1092"))],
      "{number} in base {base} is {digits}."),
    T("finance", "project", "savings_growth", "Balance of a deposit after years of compound interest.",
      [P("deposit", "number", "Money put in at the start.", (1000.0, 2500.0, 10000.0, 45000.0)),
       P("rate_percent", "number", "Interest per year, in percent.", (1.5, 2.75, 4.0, 5.2)),
       P("years", "integer", "Years it stays in.", (2, 5, 8, 15, 30)),
       P("compounding", "enum", "How often interest is added.", ("monthly", "quarterly", "yearly"), required=False)],
      ["If I put {deposit} away at {rate_percent}% for {years} years, what will I have?",
       "Balance of {deposit} after {years} years at {rate_percent} percent compounded {compounding}?"],
      [("balance", "number", (1077.3, 2861.15, 13685.7, 96510.4))],
      "After {years} years you would have {balance}."),
    T("astronomy", "get", "daylight", "Sunrise and sunset in a town on a day.",
      [P("town", "string", "The town.", TOWNS), P("date", "string", "Day in YYYY-MM-DD form.", DATES)],
      ["When does the sun rise in {town} on {date}?", "Sunrise and sunset for {town} on {date}."],
      [("sunrise", "string", ("05:12", "06:48", "07:31", "08:55")), ("sunset", "string", ("16:20", "18:02", "20:44"))],
      "On {date} in {town} the sun rises at {sunrise} and sets at {sunset}."),
    T("history", "lookup", "event_date", "Year and place of a well-known historical event.",
      [P("event", "enum", "The event.", ("the first crossing of the Channel by balloon", "the opening of the Suez "
                                         "Canal", "the first ascent of Everest", "the founding of the Red Cross"))],
      ["When was {event}?", "What year and where was {event}?"],
      [("year", "integer", (1785, 1863, 1869, 1953)), ("place", "string", ("Dover", "Geneva", "Port Said", "Nepal"))],
      "That was in {year}, {place}."),
    T("music", "find", "concerts", "Upcoming concerts of an artist, optionally in one town.",
      [P("artist", "string", "Performer or band.", ("The Quiet Orchards", "Mina Solace", "Brass Lantern Trio",
                                                   "Okapi Skies")),
       P("town", "string", "Town to look in.", TOWNS, required=False)],
      ["When does {artist} play next?", "Is {artist} playing in {town} soon?"],
      [("venue", "string", ("The Foundry", "Harbour Hall", "Open Air Stage")), ("date", "string", DATES)],
      "{artist} plays {venue} on {date}."),
    T("biology", "get", "species_profile", "Habitat and typical lifespan of an animal species.",
      [P("species", "enum", "Common name of the species.", SPECIES),
       P("facts", "array", "What to include.", ("diet", "habitat", "lifespan", "range"), required=False)],
      ["How long does a {species} live?", "Tell me the {facts} of the {species}."],
      [("lifespan_years", "integer", (1, 4, 12, 20, 80)),
       ("habitat", "string", ("coastal waters", "mountain slopes", "open ocean", "woodland edges"))],
      "A {species} lives about {lifespan_years} years, in {habitat}."),
    T("housing", "estimate", "rent", "Typical monthly rent for a flat in a town.",
      [P("town", "string", "Town of the flat.", TOWNS),
       P("bedrooms", "integer", "Number of bedrooms.", range(1, 5)),
       P("furnished", "boolean", "Furnished flats only.", required=False, phrase="furnished")],
      ["What does a {bedrooms}-bedroom flat rent for in {town}?", "Typical rent in {town}, {bedrooms} bedrooms, "
       "{furnished}?"],
      [("monthly_rent", "integer", range(450, 3200, 35))],
      "About {monthly_rent} a month."),
    T("calendar", "count", "days_between", "Number of days from one date to another.",
      [P("start", "string", "First date, YYYY-MM-DD.", DATES), P("end", "string", "Second date, YYYY-MM-DD.", DATES),
       P("weekdays_only", "boolean", "Count only Monday to Friday.", required=False, phrase="weekdays only")],
      ["How many days from {start} to {end}?", "Count the days between {start} and {end}, {weekdays_only}."],
      [("days", "integer", range(14, 290, 3))],
      "There are {days} days from {start} to {end}."),
    T("nutrition", "get", "food_nutrients", "Energy and protein in a portion of a food.",
      [P("food", "enum", "The food.", ("oats", "lentils", "almonds", "brown rice", "tofu", "salmon")),
       P("grams", "number", "Portion size in grams.", (30.0, 50.0, 100.0, 150.0), required=False)],
      ["How many calories are in {grams} g of {food}?", "Nutrition of {food}?"],
      [("kcal", "integer", range(40, 620, 9)), ("protein_g", "number", (2.6, 6.1, 9.0, 13.2, 21.5))],
      "{grams} g of {food}: {kcal} kcal and {protein_g} g of protein."),
    T("energy", "estimate", "appliance_use", "Electricity an appliance uses and what it costs.",
      [P("watts", "integer", "Power of the appliance in watts.", (60, 400, 1200, 2000)),
       P("hours_per_day", "number", "Hours it runs each day.", (0.5, 2.0, 6.0, 24.0)),
       P("price_per_kwh", "number", "Price of one kWh.", (0.12, 0.21, 0.34), required=False)],
      ["How much power does a {watts} W heater use running {hours_per_day} hours a day?",
       "Cost of {watts} watts for {hours_per_day} h a day at {price_per_kwh} per kWh?"],
      [("kwh_per_month", "number", (0.9, 24.0, 216.0, 1440.0)), ("monthly_cost", "number", (0.19, 5.04, 45.36))],
      "It uses {kwh_per_month} kWh a month, about {monthly_cost}."),
)

# Rates a call gives as a fraction of one (0.05) and a request says in percent ("5%"), the way many APIs take them;
# the description says so, or says only "rate", the usual convention. The templates above that take percent (loans,
# savings, tips) say "in percent", so a model learns to read which one a schema wants.
RATE_TEMPLATES: tuple[Template, ...] = (
    T("finance", "project", "deposit_value", "Value of a deposit after years of growth at a fixed yearly rate.",
      [P("deposit", "number", "Money put in at the start.", (800.0, 3000.0, 12000.0, 60000.0)),
       P("growth", "number", "Yearly growth as a fraction of one: 0.04 means 4% a year.", (0.02, 0.035, 0.05, 0.07),
         fraction=True),
       P("years", "integer", "How long it grows, in years.", (3, 6, 10, 20))],
      ["What is {deposit} worth after {years} years growing {growth} a year?",
       "Project {deposit} over {years} years at {growth} yearly growth."],
      [("value", "number", (952.4, 4217.9, 19546.2, 232158.0))],
      "After {years} years it is worth {value}."),
    T("shopping", "compute", "reduced_price", "Price of an item after a percentage discount.",
      [P("price", "number", "Price before the discount.", (19.99, 45.0, 120.0, 349.5)),
       P("discount", "number", "Share taken off, between 0 and 1 (0.25 for a quarter off).", (0.1, 0.15, 0.25, 0.4),
         fraction=True)],
      ["What does a {price} jacket cost with {discount} off?", "Take {discount} off {price}."],
      [("final_price", "number", (17.99, 38.25, 90.0, 209.7))],
      "With {discount} off, it costs {final_price}."),
    T("tax", "calculate", "purchase_tax", "Tax due on a purchase at a given tax rate.",
      [P("amount", "number", "Purchase amount before tax.", (24.0, 80.0, 310.0, 1250.0)),
       P("tax_rate", "number", "Rate of tax as a plain fraction: 0.08 stands for 8 percent.", (0.05, 0.0725, 0.08, 0.2),
         fraction=True),
       P("region", "string", "Region whose tax applies.", TOWNS, required=False)],
      ["How much tax is due on {amount} at {tax_rate}?", "Sales tax on {amount} in {region} at {tax_rate}?"],
      [("tax", "number", (1.2, 5.8, 24.8, 250.0)), ("total", "number", (25.2, 85.8, 334.8, 1500.0))],
      "The tax is {tax}, so {total} in total."),
    T("investing", "forecast", "fund_value", "Expected value of a fund holding after some years.",
      [P("fund", "string", "Name of the fund.", ("Northwind Index", "Cedar Growth", "Harbor Bond Fund",
                                                 "Aurora Dividend")),
       P("amount", "number", "Amount invested.", (1500.0, 5000.0, 20000.0)),
       P("yearly_return", "number", "Expected return per year.", (0.03, 0.06, 0.075, 0.09), fraction=True),
       P("years", "integer", "Holding period in years.", (2, 5, 12))],
      ["If I put {amount} in {fund} for {years} years and it returns {yearly_return} a year, what will it be worth?",
       "Value of {amount} in {fund} after {years} years at {yearly_return} a year?"],
      [("value", "number", (1687.8, 6691.1, 47261.4))],
      "{amount} in {fund} would grow to {value}."),
    T("demography", "project", "population", "Population of a town after years of steady growth.",
      [P("town", "string", "The town.", TOWNS), P("population", "integer", "Inhabitants today.", (12000, 85000, 410000)),
       P("growth_rate", "number", "Yearly growth rate of the population.", (0.01, 0.015, 0.025, 0.04), fraction=True),
       P("years", "integer", "Years ahead.", (5, 10, 25))],
      ["{town} has {population} people and grows {growth_rate} a year. How many in {years} years?",
       "Population of {town} in {years} years if it grows {growth_rate} yearly from {population}?"],
      [("projected", "integer", (13250, 98600, 452000, 601000))],
      "In {years} years {town} would have about {projected} people."),
)

# Values a call gives as a code or a formatted name (ISO codes, unit symbols, time-zone names, "City, ST") and a request
# says in everyday words; the description says which form the schema wants, so a model learns to write the schema's
# form rather than copy the request's words.
_CURRENCIES = {"GBP": "British pounds", "EUR": "euros", "JPY": "Japanese yen", "CHF": "Swiss francs",
               "INR": "Indian rupees", "MXN": "Mexican pesos", "SEK": "Swedish kronor", "CAD": "Canadian dollars"}
_LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "ja": "Japanese", "pt": "Portuguese", "sw": "Swahili",
              "it": "Italian", "nl": "Dutch"}
_COUNTRIES = {"JP": "Japan", "KE": "Kenya", "BR": "Brazil", "NO": "Norway", "IN": "India", "DE": "Germany",
              "PE": "Peru", "NZ": "New Zealand"}
_ZONES = {"Asia/Tokyo": "Tokyo", "Europe/Oslo": "Oslo", "America/Chicago": "Chicago", "Africa/Nairobi": "Nairobi",
          "Australia/Hobart": "Hobart", "Europe/Lisbon": "Lisbon", "America/Lima": "Lima", "Asia/Kolkata": "Kolkata"}
_US_CITIES = {"Denver, CO": "Denver", "Austin, TX": "Austin", "Seattle, WA": "Seattle", "Boston, MA": "Boston",
              "Atlanta, GA": "Atlanta", "Phoenix, AZ": "Phoenix", "Portland, OR": "Portland",
              "Nashville, TN": "Nashville"}
CODED_TEMPLATES: tuple[Template, ...] = (
    T("money", "quote", "currency_swap", "Quote what an amount of money fetches in another currency after the fee.",
      [P("amount", "number", "How much money is exchanged.", (75.0, 200.0, 640.0, 1500.0)),
       P("sell", "string", "Three-letter ISO 4217 code of the currency handed over, such as EUR.", spoken=_CURRENCIES),
       P("buy", "string", "Three-letter ISO 4217 code of the currency wanted, such as CHF.", spoken=_CURRENCIES),
       P("fee_percent", "number", "Exchange fee in percent.", (0.5, 1.0, 2.5), required=False)],
      ["How many {buy} would I get for {amount} {sell}?",
       "Swap {amount} {sell} into {buy} with a {fee_percent} percent fee."],
      [("received", "number", (61.2, 188.4, 702.9, 16890.0)), ("rate", "number", (0.86, 1.17, 112.6))],
      "{amount} {sell} fetch {received} {buy} at a rate of {rate}."),
    T("language", "translate", "phrase", "Translate a short phrase into another language.",
      [P("phrase", "string", "The phrase to translate.", ("good morning", "where is the station", "thank you very much",
                                                          "see you tomorrow")),
       P("target", "string", "Two-letter ISO 639-1 code of the language wanted, like fr or de.", spoken=_LANGUAGES)],
      ["How do you say {phrase} in {target}?", "Put {phrase} into {target}."],
      [("translation", "string", ("bom dia", "guten Morgen", "asante sana", "hasta mañana"))],
      "In {target}: {translation}."),
    T("calendar", "list", "public_holidays", "Public holidays of a country in a given year.",
      [P("country", "string", "Two-letter ISO 3166-1 country code, for example FR.", spoken=_COUNTRIES),
       P("year", "integer", "The year.", (2026, 2027, 2028))],
      ["Which public holidays does {country} have in {year}?", "List the holidays in {country} for {year}."],
      [("count", "integer", (9, 11, 13, 16)), ("first", "string", ("1 January", "6 February", "26 January"))],
      "{country} has {count} public holidays in {year}, the first on {first}."),
    T("clock", "get", "zone_time", "Clock time right now for a named zone of the world.",
      [P("zone", "string", "IANA time zone name, as Region/City, e.g. Europe/Paris.", spoken=_ZONES),
       P("twelve_hour", "boolean", "Give the time on a 12-hour clock.", required=False, phrase="in am/pm")],
      ["What time is it in {zone} right now?", "Tell me the local time in {zone} {twelve_hour}."],
      [("time", "string", ("07:42", "13:05", "18:30", "23:16"))],
      "It is {time} in {zone}."),
    T("weather", "get", "city_forecast", "Tomorrow's forecast for a city in the United States.",
      [P("city", "string", "City and state abbreviation, written as City, ST (Boise, ID).", spoken=_US_CITIES),
       P("units", "enum", "Temperature units.", ("fahrenheit", "celsius"), required=False)],
      ["What's the weather tomorrow in {city}?", "Forecast for {city} tomorrow in {units}."],
      [("high", "integer", (41, 58, 73, 96)), ("sky", "string", ("sunny", "cloudy", "showers"))],
      "Tomorrow in {city}: {sky}, a high of {high}."),
    T("shipping", "estimate", "parcel_postage", "Postage for a parcel sent abroad.",
      [P("weight", "number", "Weight of the parcel.", (0.5, 2.0, 4.5, 12.0)),
       P("weight_unit", "string", "Unit of the weight as its symbol: kg or lb.",
         spoken={"kg": "kilograms", "lb": "pounds"}),
       P("country", "string", "Destination as a two-letter ISO 3166-1 country code.", spoken=_COUNTRIES)],
      ["How much to post {weight} {weight_unit} to {country}?",
       "Postage for a {weight} {weight_unit} parcel to {country}?"],
      [("postage", "number", (8.4, 17.9, 36.5, 72.0)), ("days", "integer", (3, 5, 9))],
      "Sending it to {country} costs {postage} and takes about {days} days."),
)

# Verb synonyms: a tool's name changes from text to text, so its schema, not its name, tells what it does.
VERBS: dict[str, tuple[str, ...]] = {
    "get": ("get", "fetch", "lookup", "read"), "read": ("read", "check"), "find": ("find", "search", "locate"), "search": ("search", "find"),
    "book": ("book", "reserve"), "convert": ("convert",), "scale": ("scale", "resize"),
    "calculate": ("calculate", "compute"), "compute": ("compute", "calculate"), "split": ("split", "divide"),
    "track": ("track", "trace"), "create": ("create", "make", "new"), "log": ("log", "record"),
    "set": ("set", "adjust"), "add": ("add", "append"), "schedule": ("schedule", "plan"),
    "count": ("count", "measure"), "enrol": ("enrol", "register"), "plan": ("plan",),
    "estimate": ("estimate", "calc"), "check": ("check", "list"), "roll": ("roll", "throw"),
    "send": ("send", "post"), "summarise": ("summarise", "describe"), "solve": ("solve", "find"),
    "lookup": ("lookup", "find"), "project": ("project", "forecast"),
}

# Requests no tool here can serve (or that need none): answered without a call.
UNSERVED = (
    ("Can you repaint my kitchen {colour}?", "I can't paint anything, and none of the tools I have here does that."),
    ("Order me a taxi to the airport.", "None of the tools offered here can call a taxi, so I can't order one."),
    ("What's the password of my neighbour's wifi?", "I can't help with that, and no tool here would."),
    ("Play the {colour} album on the living room speaker.", "No tool here controls a speaker, so I can't play it."),
    ("Water my plants at six tomorrow.", "None of my tools can water plants; you may want a timer for that."),
    ("Hello! How are you today?", "Hello! I'm fine, thanks. What can I do for you?"),
    ("Thanks, that was all.", "You're welcome!"),
    ("Write a two-line poem about the sea.", "Grey water folds on the shore,\nand the gulls ask for more."),
    ("Cancel my gym membership.", "I have no tool for gym memberships, so I can't cancel it from here."),
    ("Fix the crack in my phone screen.", "That needs a repair shop; none of the tools here can do it."),
)


# ----------------------------------------------------------------------------------------------- simulation
def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def simulate(tool: str, args: Mapping[str, Any], returns: Sequence[tuple[str, str, Sequence[Any]]]) -> dict[str, Any]:
    """A tool's result, simulated from its declared result fields: each value is drawn from its pool by a generator
    seeded with the call (tool name and arguments), so the same call always gets the same result."""
    digest = hashlib.sha256(f"{tool}\n{_canon(dict(args))}".encode()).hexdigest()
    rng = Random(int(digest[:16], 16))
    return {name: rng.choice(list(pool)) for name, _kind, pool in returns}


# ----------------------------------------------------------------------------------------------- one tool, renamed
@dataclass(frozen=True)
class Offered:
    """A template as offered in one text: its name for that text and its spec."""

    template: Template
    name: str

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.template.description, self.template.parameters())


def _name(t: Template, rng: Random) -> str:
    verb = rng.choice(VERBS.get(t.verb, (t.verb,)))
    style = rng.random()
    if style < 0.6:
        return f"{verb}_{t.noun}"
    if style < 0.8:  # camelCase
        words = [verb, *t.noun.split("_")]
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return f"{t.domain}.{verb}_{t.noun}"  # a namespaced name, as API modules write them


def _say(p: Param, value: Any) -> str:
    """How a request writes a parameter's value."""
    if p.kind == "boolean":
        return p.phrase
    if p.kind == "array":
        return _listed([str(v) for v in value])
    if p.kind == "object":
        return p.phrase.format(**value)
    if p.spoken:
        return dict(p.spoken)[value]
    if p.fraction:
        return f"{value * 100:g}%"  # :g drops the float noise of the product (0.035 * 100 = 3.5000000000000004)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _value(p: Param, rng: Random, taken: Mapping[str, Any]) -> Any:
    if p.kind == "boolean":
        return True
    if p.kind == "array":
        return rng.sample(list(p.values), rng.randint(1, min(3, len(p.values))))
    if p.kind == "object":
        return {f.name: _value(f, rng, {}) for f in p.fields}
    # Two parameters drawing from the same pool (origin, destination) get different values.
    pool = [v for v in p.values if v not in taken.values()] or list(p.values)
    return rng.choice(pool)


def _plain(value: Any) -> Any:
    """`value` with every whole float (50.0) as an int (50), inside arrays and objects too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _slots(request: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", request)


def make_call(t: Template, rng: Random, request: str | None = None) -> tuple[str, dict[str, Any]]:
    """A request of `t` (`request`, or one drawn) and the arguments it states: exactly the parameters it names."""
    request = request if request is not None else rng.choice(t.requests)
    by_name = {p.name: p for p in t.params}
    args: dict[str, Any] = {}
    for slot in _slots(request):
        args[slot] = _value(by_name[slot], rng, args)
    text = request.format(**{k: _say(by_name[k], v) for k, v in args.items()})
    # Order the arguments as the schema lists them, as a model reading it would write them.
    return text, {p.name: args[p.name] for p in t.params if p.name in args}


#: How many calls a request for one tool over several values asks for, and how often.
SERIES_CALLS = ((2, 0.5), (3, 0.3), (4, 0.2))
#: The second way a series is said: the first request in full, then the other values after it.
SERIES_AGAIN = ("Then repeat it with {name} {values}.", "Do the same for {name} {values} too.",
                "And again with {name} {values}.")


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _variable(p: Param) -> bool:
    """Whether a request can ask for several values of `p` at once (one call each)."""
    return p.kind in ("string", "enum", "integer", "number") and len(p.values) >= 2


def make_series(t: Template, rng: Random, calls: Sequence[tuple[int, float]] = SERIES_CALLS
                ) -> tuple[str, list[dict[str, Any]]] | None:
    """One request asking for `t` over two to four values of one parameter, said once ("the outlook for Oslo, Ghent
    and Hobart", or the first request then "Then repeat it with days 3 and 5."), and the calls' arguments, which
    share every other value. None when no request of `t` names a parameter that can vary."""
    by_name = {p.name: p for p in t.params}
    choices = [(r, slot) for r in t.requests for slot in dict.fromkeys(_slots(r)) if _variable(by_name[slot])]
    if not choices:
        return None
    request, slot = rng.choice(choices)
    _, args = make_call(t, rng, request)
    p = by_name[slot]
    others = {k: v for k, v in args.items() if k != slot}
    pool = [v for v in p.values if v != args[slot] and v not in others.values()]
    if not pool:
        return None
    count = rng.choices([n for n, _ in calls], weights=[w for _, w in calls])[0]
    values = [args[slot], *rng.sample(pool, min(count, len(pool) + 1) - 1)]
    said = [_say(p, v) for v in values]
    fill = {k: _say(by_name[k], v) for k, v in others.items()}
    # A list of values beside an array's own list ("A and B from C and D") would not say which is which.
    arrays = any(by_name[k].kind == "array" for k in others)
    if rng.random() < 0.6 and not arrays:
        text = request.format(**fill, **{slot: _listed(said)})
    else:
        again = rng.choice(SERIES_AGAIN).format(name=slot.replace("_", " "), values=_listed(said[1:]))
        text = request.format(**fill, **{slot: said[0]}) + " " + again
    return text, [{**args, slot: v} for v in values]


#: How many calls a request varying two parameters together asks for, and how often.
PAIRS_CALLS = ((2, 0.6), (3, 0.4))
#: The second way such a request is said: the first request in full, then the other pairs after it (and the joiner).
PAIRS_AGAIN = (("Then do the same with {pairs}.", ", and with "), ("Repeat that for {pairs} too.", ", and for "),
               ("And once more with {pairs}.", ", then with "))


def _spoken_slot(request: str, slot: str) -> bool:
    """Whether `{slot}` stands as its own words in `request` (not glued, as in `{a}x^2` or `a={a}`), so a list of
    values can take its place."""
    return re.search(r"(^|\s)\{" + slot + r"\}(?=$|[\s,.?!;:])", request) is not None


def make_pairs(t: Template, rng: Random) -> tuple[str, list[dict[str, Any]]] | None:
    """One request asking for `t` two or three times with two parameters changing together ("Trains from Oslo and
    Kyoto to Hobart and Tallinn on 2027-03-14, respectively", or the first request then "Then do the same with origin
    Lisbon and destination Hobart."), and the calls' arguments, which share every other value. None when no request
    of `t` names two parameters that can vary."""
    by_name = {p.name: p for p in t.params}
    choices = [(r, a, b) for r in t.requests for i, a in enumerate(dict.fromkeys(_slots(r)))
               for b in list(dict.fromkeys(_slots(r)))[i + 1:] if _variable(by_name[a]) and _variable(by_name[b])]
    if not choices:
        return None
    request, a, b = rng.choice(choices)
    _, first = make_call(t, rng, request)
    others = {k: v for k, v in first.items() if k not in (a, b)}
    count = rng.choices([n for n, _ in PAIRS_CALLS], weights=[w for _, w in PAIRS_CALLS])[0]
    calls = [first]
    for _ in range(count - 1):
        taken = {k: [c[k] for c in calls] for k in (a, b)}
        row: dict[str, Any] = {}
        for slot in (a, b):
            # Every call changes both values; two slots drawing from one pool (origin, destination) differ too.
            pool = [v for v in by_name[slot].values if v not in taken[slot] and v not in row.values()
                    and v not in others.values()]
            if not pool:
                return None
            row[slot] = rng.choice(pool)
        calls.append({**first, **row})
    fill = {k: _say(by_name[k], v) for k, v in others.items()}
    arrays = any(by_name[k].kind == "array" for k in others)
    said = {k: [_say(by_name[k], c[k]) for c in calls] for k in (a, b)}
    if rng.random() < 0.5 and not arrays and _spoken_slot(request, a) and _spoken_slot(request, b):
        text = request.format(**fill, **{k: _listed(v) for k, v in said.items()})
        end = text[-1] if text[-1] in ".?!" else ""
        text = text[:len(text) - len(end)] + ", respectively" + (end or ".")
    else:
        phrase, joiner = rng.choice(PAIRS_AGAIN)
        pairs = joiner.join(f"{a.replace('_', ' ')} {said[a][i]} and {b.replace('_', ' ')} {said[b][i]}"
                            for i in range(1, count))
        text = request.format(**fill, **{k: v[0] for k, v in said.items()}) + " " + phrase.format(pairs=pairs)
    return text, calls


def _answer(t: Template, args: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    by_name = {p.name: p for p in t.params}
    values = {p.name: "" for p in t.params}
    values.update({k: _say(by_name[k], v) for k, v in args.items()})
    values.update({k: (f"{v:g}" if isinstance(v, float) else str(v)) for k, v in result.items()})
    return re.sub(r"\s+([,.;:])", r"\1", t.answer.format(**values))


# ----------------------------------------------------------------------------------------------- texts
@dataclass
class Sample:
    """One training conversation and what it holds."""

    id: str
    kind: str                    # "single", "parallel" or "none"
    domain: str
    text: str                    # the whole conversation in the chat template
    prompt_chars: int            # where the assistant's reply starts in `text`
    tools: list[str]             # the names offered, in order
    calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "arguments", "result"}]
    request: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "domain": self.domain, "text": self.text,
                "prompt_chars": self.prompt_chars, "tools": self.tools, "calls": self.calls, "request": self.request}


KINDS = (("single", 0.6), ("parallel", 0.25), ("none", 0.15))

# Replies to a request that an offered tool's neighbour would serve, but none offered does.
NEAR_MISS = ("None of the tools offered here can do that, so I can't answer it with them.",
             "I don't have a tool for that: the ones offered here do other things.",
             "The tools available here don't cover this request, so I can't do it.",
             "No offered tool fits this request; I can't look that up here.")


@dataclass(frozen=True)
class Mix:
    """How a corpus is drawn: the kinds' weights, the schemas, how often a text offers only the tool(s) it needs
    (`alone`), and how often a request no tool fits is one an unoffered schema would serve, with its neighbours
    offered instead (`near_miss`) rather than small talk. A share of 0 draws nothing, so "v1" is the first corpus."""

    kinds: tuple[tuple[str, float], ...] = KINDS
    templates: tuple[Template, ...] = TEMPLATES
    alone: float = 0.0
    near_miss: float = 0.0
    plain_numbers: bool = False   # a whole number is written as the request says it (50), not as a float (50.0)
    series: float = 0.0           # of the parallel texts: one tool over several values said in one request
    series_calls: tuple[tuple[int, float], ...] = SERIES_CALLS  # how many values such a request gives, how often
    pairs: float = 0.0            # of those: two parameters changing together instead of one


MIXES: dict[str, Mix] = {
    "v1": Mix(),
    # A function offered alone (most BFCL-style requests offer one), more requests to decline, and more schemas.
    "v2": Mix(kinds=(("single", 0.5), ("parallel", 0.25), ("none", 0.25)), templates=TEMPLATES + MORE_TEMPLATES,
              alone=0.35, near_miss=0.6),
}
# v2, with whole numbers written as integers: a model trained on v2 writes `50.0` for an integer parameter, which
# a strict checker (BFCL's) counts as the wrong type, while `50` is right for both integer and number parameters.
MIXES["v3"] = replace(MIXES["v2"], plain_numbers=True)
# v3, with more parallel texts, half of them one tool over two to four values said in one request ("the outlook for
# Oslo, Ghent and Hobart"): v2's parallel texts are two or three whole requests, one per call, and a model trained
# on them writes one call fewer than a one-sentence request asks for.
MIXES["v4"] = replace(MIXES["v3"], kinds=(("single", 0.45), ("parallel", 0.3), ("none", 0.25)), series=0.5)
# v4, with the parallel requests BFCL-style items still get wrong: two values changing together ("from A and B to C and
# D, respectively"), more three- and four-call requests, and rates a schema takes as a fraction but a request says
# in percent (RATE_TEMPLATES).
MIXES["v5"] = replace(MIXES["v4"], kinds=(("single", 0.4), ("parallel", 0.35), ("none", 0.25)),
                      templates=TEMPLATES + MORE_TEMPLATES + RATE_TEMPLATES, series=0.6,
                      series_calls=((2, 0.35), (3, 0.35), (4, 0.3)), pairs=0.4)
# v5, with values a schema wants as a code or in a set format but a request says in words (CODED_TEMPLATES): a model
# trained on v5 copies the request's words ("British pounds" for a currency code, "New York" for "City, ST").
MIXES["v6"] = replace(MIXES["v5"], templates=MIXES["v5"].templates + CODED_TEMPLATES)
DEFAULT_MIX = "v2"


def _turn_end(chat: ChatFn) -> str:
    """What the chat template writes after an assistant message (e.g. ChatML's `<|im_end|>`)."""
    mark = "\x00reply\x00"
    full = chat([{"role": "user", "content": "q"}, {"role": "assistant", "content": mark}],
                add_generation_prompt=False)
    return full[full.index(mark) + len(mark):] if mark in full else ""


def _offer(main: Sequence[Template], rng: Random, n_tools: int,
           templates: Sequence[Template] = TEMPLATES) -> list[Offered]:
    """The main templates and distractors (some from the same domain: the right one among its neighbours), shuffled,
    each with this text's name; names never clash."""
    chosen = list(dict.fromkeys(main))
    same = [t for t in templates if t.domain in {m.domain for m in main} and t not in chosen]
    other = [t for t in templates if t not in chosen and t not in same]
    rng.shuffle(same)
    rng.shuffle(other)
    for t in same[:1] + other:
        if len(chosen) >= n_tools:
            break
        chosen.append(t)
    return _named(chosen, rng)


def _near(withheld: Template, rng: Random, n_tools: int, templates: Sequence[Template]) -> list[Offered]:
    """Tools that do not serve `withheld`'s request: its domain's other schemas first when a coin says so (the hard
    case: a neighbour that almost fits), then others."""
    same = [t for t in templates if t.domain == withheld.domain and t is not withheld]
    other = [t for t in templates if t.domain != withheld.domain]
    rng.shuffle(same)
    rng.shuffle(other)
    pool = same + other if same and rng.random() < 0.5 else other
    return _named(pool[:n_tools], rng)


def _named(chosen: list[Template], rng: Random) -> list[Offered]:
    rng.shuffle(chosen)
    offered: list[Offered] = []
    names: set[str] = set()
    for t in chosen:
        name = _name(t, rng)
        while name.lower() in names:
            name = f"{t.noun}_{rng.choice(VERBS.get(t.verb, (t.verb,)))}"
            if name.lower() in names:
                name = f"{t.domain}_{t.noun}"
        names.add(name.lower())
        offered.append(Offered(t, name))
    return offered


def make_sample(index: int, rng: Random, chat: ChatFn, end: str, mix: Mix = MIXES["v1"]) -> Sample:
    """One conversation; its kind drawn with the mix's weights."""
    dialect = get_dialect("hermes")
    templates = mix.templates
    kind = rng.choices([k for k, _ in mix.kinds], weights=[w for _, w in mix.kinds])[0]
    n_tools = rng.randint(2, 5)
    if kind == "none":
        if mix.near_miss and rng.random() < mix.near_miss:
            withheld = rng.choice(templates)
            request, _ = make_call(withheld, rng)
            offered = _near(withheld, rng, n_tools - 1, templates)
            answer = rng.choice(NEAR_MISS)
        else:
            offered = _offer([rng.choice(templates)], rng, n_tools, templates)
            request, answer = rng.choice(UNSERVED)
            request = request.format(colour=rng.choice(COLOURS))
        prompt = dialect.prompt(request, ToolSpecs(o.spec() for o in offered), chat)
        return Sample(f"schema-{index:06d}", kind, "none", prompt + answer + end, len(prompt),
                      [o.name for o in offered], [], request)
    series: tuple[str, list[dict[str, Any]]] | None = None
    if kind == "parallel" and mix.series and rng.random() < mix.series:
        # One tool over several values said once. A mix without series draws nothing here, so v1-v3 stay the texts
        # they were.
        serial = rng.choice(templates)
        if mix.pairs and rng.random() < mix.pairs:
            series = make_pairs(serial, rng) or make_series(serial, rng, mix.series_calls)
        else:
            series = make_series(serial, rng, mix.series_calls)
    if kind == "single":
        mains = [rng.choice(templates)]
        parts = 1
    elif series is not None:
        mains, parts = [serial], len(series[1])
    else:
        # Parallel: the same tool for two or three requests, or two different tools in one request.
        if rng.random() < 0.5:
            t = rng.choice(templates)
            mains, parts = [t], rng.randint(2, 3)
        else:
            mains, parts = rng.sample(list(templates), 2), 2
    if mix.alone and rng.random() < mix.alone:
        offered = _named(list(mains), rng)      # only what the request needs, as a single-function request offers
    else:
        offered = _offer(mains, rng, max(n_tools, len(mains) + 1), templates)  # one distractor at least
    by_template = {o.template: o for o in offered}
    requests: list[str] = []
    calls: list[ToolCall] = []
    records: list[dict[str, Any]] = []
    answers: list[str] = []
    seen: set[str] = set()
    for part in range(parts):
        t = mains[part % len(mains)]
        for _ in range(10):  # a repeated call would be one call: draw again
            text, args = (series[0], series[1][part]) if series is not None else make_call(t, rng)
            if mix.plain_numbers:
                args = _plain(args)
            if _canon([t.noun, args]) not in seen:
                break
        seen.add(_canon([t.noun, args]))
        name = by_template[t].name
        result = simulate(name, args, t.returns)
        requests.append(text)
        calls.append(ToolCall(name, KeywordArgs(args)))
        records.append({"name": name, "arguments": args, "result": result})
        answers.append(_answer(t, args, result))
    request = requests[0] if parts == 1 or series is not None else _join_requests(requests, rng)
    prompt = dialect.prompt(request, ToolSpecs(o.spec() for o in offered), chat)
    reply = "\n".join(dialect.render_call(c) for c in calls)
    pending = dialect.pending(prompt + reply)
    if pending is None or len(pending.calls) != len(calls):
        raise AssertionError(f"the hermes dialect does not see the {len(calls)} calls just written: {reply!r}")
    reply += dialect.close(pending, [_canon(r["result"]) for r in records])
    reply += " ".join(answers)
    return Sample(f"schema-{index:06d}", kind, mains[0].domain, prompt + reply + end, len(prompt),
                  [o.name for o in offered], records, request)


def _join_requests(requests: Sequence[str], rng: Random) -> str:
    glue = rng.choice((" Also: ", " And ", " Then: "))
    out = requests[0]
    for r in requests[1:]:
        out += glue + (r[0].lower() + r[1:] if glue.strip() == "And" else r)
    return out


def generate(count: int, seed: int = 0, chat: ChatFn | None = None, mix: str = DEFAULT_MIX) -> list[Sample]:
    """`count` conversations, the same for the same seed, chat template and mix (`chat`: the model's, e.g. a
    backend's `chat_prompt`; default: plain `role: text` lines; `mix`: a name in MIXES)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; known: {', '.join(sorted(MIXES))}")
    chat = chat or _plain_chat
    end = _turn_end(chat)
    rng = Random(f"schema-tools:{seed}")
    return [make_sample(i, rng, chat, end, MIXES[mix]) for i in range(count)]


def _plain_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True, **_: Any) -> str:
    # The shape of a model without a template (toolcall's backends write the same); tools are left to the dialect.
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + ("\nassistant:" if add_generation_prompt
                                                                          else "")


def template_chat(model: str | None = None) -> ChatFn:
    """The chat template of `model` (a Hugging Face checkpoint dir; None: the embedded SmolLM2 GGUF), tokenizer only."""
    from toolcall.errors import MissingDependencyError

    try:
        from transformers import AutoTokenizer
    except ImportError as err:
        raise MissingDependencyError("transformers", "hf", "the model's chat template") from err
    if model is None:
        from toolcall.backends.hf_loading import embedded_model_path

        path = embedded_model_path()
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    else:
        tok = AutoTokenizer.from_pretrained(model)

    def chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True,
             tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        return str(tok.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                           add_generation_prompt=add_generation_prompt,
                                           tools=[dict(t) for t in tools] if tools else None))

    return chat


# ----------------------------------------------------------------------------------------------- leak check
_WORD = re.compile(r"[a-z]+|\d+")


def words(text: str) -> list[str]:
    """Lower-case words with every number masked, so shingles compare wording, not values."""
    return ["#" if w.isdigit() else w for w in _WORD.findall(text.lower())]


def shingles(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams holding at most one number: a run like "on # # # and" says nothing about where text came from."""
    w = words(text)
    grams = (tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return {g for g in grams if g.count("#") <= 1}


def corpus_strings() -> dict[str, list[str]]:
    """The text this generator can put in a training conversation: tool names (every spelling), descriptions,
    parameter descriptions, requests and answers, and the unserved requests with their replies."""
    names: set[str] = set()
    prose: list[str] = []
    for t in TEMPLATES + MORE_TEMPLATES + RATE_TEMPLATES + CODED_TEMPLATES:
        for verb in VERBS.get(t.verb, (t.verb,)):
            words_ = [verb, *t.noun.split("_")]
            names.update({f"{verb}_{t.noun}", words_[0] + "".join(w.capitalize() for w in words_[1:]),
                          f"{t.domain}.{verb}_{t.noun}", f"{t.noun}_{verb}"})
        names.add(f"{t.domain}_{t.noun}")
        prose += [t.description, *t.requests, t.answer]
        for p in t.params:
            prose += [p.description, *(f.description for f in p.fields)]
    prose += [s for pair in UNSERVED for s in pair] + list(NEAR_MISS) + list(SERIES_AGAIN)
    prose += [phrase for phrase, _ in PAIRS_AGAIN]
    return {"names": sorted(names), "prose": prose}


def bfcl_strings(data: str | Path | None = None) -> dict[str, list[str]] | None:
    """Function names and the prose (requests, function and parameter descriptions) of every BFCL data file, or None
    when bfcl-eval is not installed and no directory is given."""
    if data is None:
        import importlib.util

        spec = importlib.util.find_spec("bfcl_eval")
        if spec is None or not spec.submodule_search_locations:
            return None
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
    names: set[str] = set()
    prose: list[str] = []

    def functions(fs: Any) -> None:
        for f in fs if isinstance(fs, list) else []:
            if isinstance(f, dict):
                names.add(str(f.get("name", "")))
                prose.append(str(f.get("description", "")))
                for p in ((f.get("parameters") or {}).get("properties") or {}).values():
                    if isinstance(p, dict):
                        prose.append(str(p.get("description", "")))

    for path in sorted(Path(data).rglob("*.json")):
        if "possible_answer" in path.parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            functions(entry.get("function"))
            for turn in entry.get("question") or []:
                for m in turn if isinstance(turn, list) else []:
                    if isinstance(m, dict) and isinstance(m.get("content"), str):
                        prose.append(m["content"])
    return {"names": sorted(names - {""}), "prose": prose}


def leak_report(ours: Mapping[str, Sequence[str]], theirs: Mapping[str, Sequence[str]], n: int = 6) -> dict[str, Any]:
    """How much of our text occurs in BFCL's: function names in common, and our strings sharing a word n-gram
    (numbers masked) with any BFCL request or description."""
    their_grams: set[tuple[str, ...]] = set()
    for text in theirs["prose"]:
        their_grams |= shingles(text, n)
    their_names = {x.lower() for x in theirs["names"]}
    shared_names = sorted(x for x in ours["names"] if x.lower() in their_names)
    overlapping = sorted({s for s in ours["prose"] if shingles(s, n) & their_grams})
    return {"n": n, "names_checked": len(ours["names"]), "strings_checked": len(ours["prose"]),
            "bfcl_names": len(their_names), "bfcl_strings": len(theirs["prose"]),
            "shared_names": shared_names, "overlapping_strings": overlapping}


# ----------------------------------------------------------------------------------------------- main
def write_corpus(out: Path, count: int, seed: int = 0, chat: ChatFn | None = None,
                 mix: str = DEFAULT_MIX) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    samples = generate(count, seed, chat, mix)
    with (out / "train.jsonl").open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s.to_json(), ensure_ascii=False) + "\n")
    theirs = bfcl_strings()
    ours = corpus_strings()
    # Beyond the templates, what the written texts say: each request as filled in, each name as offered.
    ours["prose"] += [s.request for s in samples]
    ours["names"] = sorted({*ours["names"], *(n for s in samples for n in s.tools)})
    leak = leak_report(ours, theirs) if theirs is not None else {"skipped": "bfcl-eval not installed"}
    (out / "leak.json").write_text(json.dumps(leak, indent=2) + "\n", encoding="utf-8")
    kinds: dict[str, int] = {}
    for s in samples:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    templates = MIXES[mix].templates
    return {"count": len(samples), "mix": mix, "kinds": kinds, "domains": len({t.domain for t in templates}),
            "templates": len(templates), "alone": sum(len(s.tools) == len({c["name"] for c in s.calls}) for s in samples),
            "leak": {k: (len(v) if isinstance(v, list) else v) for k, v in leak.items()}}


OUT_FILES = ("train.jsonl", "leak.json")



def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write chat-format schema-driven tool-use texts (hermes dialect).")
    parser.add_argument("--out", type=Path, required=True, help="output directory (made if missing; one that "
                                                                 "already holds train.jsonl or leak.json is refused "
                                                                 "unless --force)")
    parser.add_argument("--force", action="store_true", help="replace train.jsonl and leak.json where --out already "
                                                             "holds them")
    parser.add_argument("--count", type=int, default=2000, help="conversations to write (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--model", default=None, help="checkpoint whose chat template is used (default: the "
                                                      "embedded SmolLM2)")
    parser.add_argument("--fake-chat", action="store_true", help="plain 'role: text' lines instead of a template")
    parser.add_argument("--mix", choices=sorted(MIXES), default=DEFAULT_MIX,
                        help=f"how the texts are drawn (default {DEFAULT_MIX}; v1: the first adapter's corpus; v3: v2 "
                             "with whole numbers written as integers; v4: v3 with more parallel texts, half of them "
                             "one tool over several values said in one request; v5: v4 with two values changing together, more three- and "
                             "four-call requests, and rates given as fractions; v6: v5 with values a schema wants as a code (GBP, "
                             "Asia/Tokyo, Denver, CO) said in words)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        check_out(args.out, OUT_FILES, args.force)  # before the chat template's model loads
        chat = None if args.fake_chat else template_chat(args.model)
        print(json.dumps(write_corpus(args.out, args.count, args.seed, chat, args.mix)), file=sys.stdout)
    except ToolcallError as err:
        print(f"{parser.prog}: error: {printable(str(err))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
