"""Generate realistic demo data: stores, categories, members, purchases and their ledger.

``manage.py demo_seed --members 300`` fills a database for a demonstration;
``--members 1000000`` fills it for the benchmarks in ``bench/``. The data are
computed in Python first and inserted once, because the points ledger refuses
updates: every member's ledger is a running balance in id order, and the member's
cached ``points_balance`` and ``last_purchase_at`` are written with the member row.

On PostgreSQL the rows go through ``COPY`` (psycopg 3), a chunk of members at a
time with their purchases, lines and ledger, so memory stays bounded; ids of members
and purchases are reserved from the sequences so that rows can refer to each other
without being read back, and the next chunk is generated in a thread while the
current one is copied. A superuser skips the foreign key checks (see
``_PostgresWriter._checks_skippable``). On SQLite the same rows go through
``bulk_create``.

The same ``--members``, ``--seed`` and ``--chunk-size`` give the same people,
receipts and amounts; times are relative to now.
"""

from __future__ import annotations

import json
import random
import time
from bisect import bisect
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import NOT_PROVIDED, JSONField
from django.utils import timezone

from members.models import (
    Member,
    MemberStatusChange,
    PointsEntry,
    ProductCategory,
    ProgrammeSettings,
    Purchase,
    PurchaseLine,
    Store,
)
from members.postgres import ids_reserve
from members.selectors import programme_settings_get

# ---------------------------------------------------------------- reference data

# code, name, city; WEB-001 takes the web site's and the app's orders.
STORES = [
    ("MSK-001", "Moscow · Tverskaya", "Moscow"),
    ("MSK-002", "Moscow · Arbat", "Moscow"),
    ("MSK-003", "Moscow · Kutuzovsky", "Moscow"),
    ("SPB-001", "Saint Petersburg · Nevsky", "Saint Petersburg"),
    ("SPB-002", "Saint Petersburg · Vasilyevsky Island", "Saint Petersburg"),
    ("KZN-001", "Kazan · Bauman Street", "Kazan"),
    ("EKB-001", "Yekaterinburg · Vainera Street", "Yekaterinburg"),
    ("NSK-001", "Novosibirsk · Krasny Prospekt", "Novosibirsk"),
    ("NNV-001", "Nizhny Novgorod · Bolshaya Pokrovskaya", "Nizhny Novgorod"),
    ("SMR-001", "Samara · Leningradskaya", "Samara"),
    ("KRD-001", "Krasnodar · Krasnaya Street", "Krasnodar"),
    ("WEB-001", "Online store", ""),
]
ONLINE_STORE = "WEB-001"

# code, name, SKU prefix, unit price range in RUB, weight among lines, sold by weight
CATEGORIES = [
    ("coffee", "Coffee", "COF", 120, 1200, 14, False),
    ("bakery", "Bakery", "BAK", 40, 450, 16, False),
    ("dairy", "Dairy", "DAI", 60, 400, 18, False),
    ("produce", "Produce", "PRD", 60, 600, 18, True),
    ("household", "Household", "HOU", 90, 1500, 10, False),
    ("beauty", "Beauty", "BEA", 150, 3500, 7, False),
    ("electronics", "Electronics", "ELE", 990, 45000, 2, False),
    ("clothing", "Clothing", "CLO", 500, 9000, 5, False),
    ("toys", "Toys", "TOY", 300, 6000, 4, False),
    ("pet-supplies", "Pet supplies", "PET", 120, 3000, 6, False),
]

# Where members live, with weights; the cities with a store shop there.
CITIES = [
    ("Moscow", 30), ("Saint Petersburg", 15), ("Kazan", 6), ("Yekaterinburg", 6),
    ("Novosibirsk", 6), ("Nizhny Novgorod", 5), ("Samara", 4), ("Krasnodar", 5),
    ("Rostov-on-Don", 4), ("Omsk", 3), ("Voronezh", 3), ("Perm", 3), ("Ufa", 3),
    ("Tula", 2), ("", 3),
]
CHANNELS = [
    (Member.Channel.STORE, 50), (Member.Channel.APP, 20), (Member.Channel.ONLINE, 15),
    (Member.Channel.REFERRAL, 8), (Member.Channel.IMPORT, 4),
    (Member.Channel.CALL_CENTRE, 3),
]

RU_MALE_FIRST = (
    "Александр Алексей Андрей Антон Арсений Артём Борис Вадим Валерий Василий Виктор "
    "Виталий Владимир Владислав Вячеслав Геннадий Георгий Глеб Григорий Даниил Денис "
    "Дмитрий Евгений Егор Иван Игорь Илья Кирилл Константин Леонид Максим Марк Матвей "
    "Михаил Никита Николай Олег Павел Пётр Роман Руслан Семён Сергей Станислав Степан "
    "Тимофей Тимур Фёдор Юрий Ярослав"
).split()
RU_FEMALE_FIRST = (
    "Александра Алёна Алина Алиса Анастасия Ангелина Анна Валентина Валерия Варвара "
    "Василиса Вера Вероника Виктория Галина Дарья Диана Ева Евгения Екатерина Елена "
    "Елизавета Жанна Зоя Инна Ирина Карина Кира Ксения Лариса Лидия Любовь Людмила "
    "Маргарита Марина Мария Милана Надежда Наталья Нина Оксана Ольга Полина Светлана "
    "Софья Таисия Татьяна Ульяна Юлия Яна"
).split()
# Male forms; the female form is derived by _ru_female_last_name.
RU_LAST = (
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров "
    "Морозов Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев "
    "Орлов Андреев Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев "
    "Романов Воробьёв Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв "
    "Ильин Максимов Поляков Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов "
    "Жуков Баранов Филиппов Комаров Давыдов Беляев Герасимов Богданов Осипов Сидоров "
    "Матвеев Титов Марков Миронов Крылов Куликов Карпов Власов Мельников Денисов "
    "Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов Абрамов "
    "Мартынов Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов "
    "Родионов Коновалов Лазарев Воронин Климов Филатов Пономарёв Голубев Кудрявцев "
    "Прохоров Наумов Потапов Журавлёв Овчинников Трофимов Леонов Соболев Ермаков "
    "Колесников Гончаров Емельянов Никифоров Грачёв Котов Гришин Ефремов Архипов Громов "
    "Кириллов Малышев Панов Моисеев Румянцев Акимов Кондратьев Бирюков Горбунов Анисимов "
    "Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов Юдин Белоусов Нестеров Симонов "
    "Островский Покровский Вишневский Успенский Трубецкой Толстой Руденко Шевченко "
    "Бондаренко Коваленко Ткаченко Ким Цой Алиев Гусейнов Хабибуллин Сафин Галиев "
    "Зиннатуллин Мухаметшин"
).split()
EN_MALE_FIRST = (
    "Oliver George Harry Jack Jacob Noah Charlie Thomas Oscar William James Henry Leo "
    "Alfie Joshua Freddie Archie Ethan Isaac Alexander Joseph Edward Samuel Max Daniel "
    "Arthur Lucas Mohammed Logan Theo Harrison Benjamin Mason Sebastian Finley Adam Dylan "
    "Zachary Riley Teddy Matthew David Andrew Michael Peter Richard Simon Paul Mark "
    "Christopher"
).split()
EN_FEMALE_FIRST = (
    "Olivia Amelia Isla Ava Emily Isabella Mia Poppy Ella Lily Sophia Grace Evie "
    "Scarlett Ruby Chloe Sophie Freya Daisy Charlotte Alice Florence Matilda Jessica "
    "Harriet Lucy Phoebe Evelyn Millie Rosie Eleanor Hannah Sienna Emma Zara Imogen "
    "Elizabeth Sarah Rebecca Laura Rachel Catherine Helen Victoria Katie Abigail Megan "
    "Holly Lauren Anna"
).split()
EN_LAST = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts "
    "Robinson Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke "
    "Patel Jackson Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker "
    "Harrison Morgan Allen James Scott Phillips Watson Davis Parker Price Bennett Young "
    "Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy "
    "Miller Cox Richards Khan Marshall Anderson Simpson Ellis Adams Singh Wilkinson "
    "Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell Matthews Owen "
    "Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins "
    "Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Gibson Howard Andrews "
    "Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce O'Brien O'Connor"
).split()
RU_MAIL_DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru"]
EN_MAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.co.uk", "hotmail.co.uk", "icloud.com"]

TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya", "'": "",
})

ADJUSTMENTS_UP = [
    "Goodwill: delivery arrived two days late",
    "Receipt lost by the till; points added by hand",
    "Compensation for a faulty product",
    "Points promised by the call centre",
    "Apology for a long wait at the checkout",
]
ADJUSTMENTS_DOWN = [
    "Receipt entered twice; duplicate points removed",
    "Returned goods: points of the refunded items taken back",
    "Points credited to the wrong card by mistake",
]
BLOCK_REASONS = [
    "Suspected card sharing: purchases in several cities on the same day",
    "Card reported stolen by the member",
    "Fraud check: many refunds in a short time",
]
CLOSE_REASONS = ["Member asked to leave the programme", "Member asked to delete the account"]

# Tunables of the shape of the data (averages; the spread is random).
PURCHASES_PER_MEMBER = 10
NON_MEMBER_SHARE = 0.25  # of all purchases
ENROLMENT_GROWTH = 0.75  # enrolment time = history * u**0.75: more people join lately
ENROLMENT_MEAN_REMAINING = 1 - 1 / (1 + ENROLMENT_GROWTH)  # mean share of history enrolled
# Card numbers and phones are bijections of the member id, so they are unique across
# runs and seeds without a lookup: multipliers are prime to 10, so x -> a*x + b mod 10^k
# is a permutation of k-digit numbers.
CARD_MULTIPLIER, CARD_OFFSET = 7_919_874_213, 31_415_926_535
PHONE_MULTIPLIER, PHONE_OFFSET = 387_420_489, 271_828_182

# COPY's text format marks NULL with \N; the SQLite path maps it back to None.
NULL = "\\N"
SECONDS_PER_DAY = 86_400
STORE_OPEN_UTC, STORE_HOURS = 5 * 3600, 14 * 3600  # 08:00-22:00 Moscow time

MEMBER_COLUMNS = (
    "id", "card_number", "first_name", "last_name", "email", "phone", "birth_date",
    "gender", "city", "language", "enrolled_at", "source_channel", "status", "referred_by_id",
    "email_consent", "email_consent_at", "sms_consent", "sms_consent_at",
    "points_balance", "last_purchase_at", "created_at", "updated_at",
)
PURCHASE_COLUMNS = (
    "id", "store_id", "receipt_number", "member_id", "channel", "purchased_at", "total",
    "discount", "item_count", "refunded_total", "created_at",
)
LINE_COLUMNS = ("purchase_id", "sku", "category_id", "quantity", "amount")
LEDGER_COLUMNS = (
    "member_id", "kind", "amount", "balance_after", "reason", "purchase_id", "reference",
    "idempotency_key", "created_at", "available_at", "details",
)
STATUS_CHANGE_COLUMNS = ("member_id", "from_status", "to_status", "reason", "created_at")


def _ru_female_last_name(male: str) -> str:
    """Return the female form of a Russian surname (Петров -> Петрова)."""
    if male.endswith(("ский", "цкий")):
        return male[:-2] + "ая"
    if male.endswith("ой"):
        return male[:-2] + "ая"
    if male.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return male + "а"
    return male  # Шевченко, Ким: the same for women


def _ean13(first_twelve: str) -> str:
    """Return the 12 digits with their EAN-13 check digit appended."""
    odd = sum(int(digit) for digit in first_twelve[0::2])
    even = sum(int(digit) for digit in first_twelve[1::2])
    return first_twelve + str((10 - (odd + 3 * even) % 10) % 10)


def _money(kopecks: int) -> str:
    """Return an amount in kopecks as a decimal string with two places."""
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def _weights_cumulative(pairs) -> tuple[list, list[int]]:
    """Split (value, weight) pairs into values and cumulative weights for bisect."""
    values = [value for value, _weight in pairs]
    return values, list(accumulate(weight for _value, weight in pairs))


# ---------------------------------------------------------------- generation


@dataclass
class _Plan:
    """What a chunk will hold, decided before ids are reserved for it."""

    number: int
    first_index: int
    rng: random.Random
    enrolled: list[int]  # epoch seconds, one per member
    purchase_counts: list[int]
    anonymous_count: int

    @property
    def size(self) -> int:
        return len(self.enrolled)

    @property
    def purchase_total(self) -> int:
        return sum(self.purchase_counts) + self.anonymous_count


@dataclass
class _Rows:
    """One chunk's rows in COPY text format, table by table, and a few counts."""

    members: list[str] = field(default_factory=list)
    purchases: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    ledger: list[str] = field(default_factory=list)
    status_changes: list[str] = field(default_factory=list)
    anonymous_purchases: int = 0
    member_ids: Sequence[int] = ()


class _Generator:
    """Turn plans into rows; pure Python, touches no database, so it runs in a thread."""

    def __init__(
        self, *, seed: int, total: int, years: float, chunk_size: int, now: datetime,
        stores: dict[str, Store], categories: dict[str, ProductCategory],
        programme: ProgrammeSettings,
    ):
        self.seed = seed
        self.total = total
        self.chunk_size = chunk_size
        self.now_ts = int(now.timestamp())
        self.span = max(int(years * 365.25 * SECONDS_PER_DAY), SECONDS_PER_DAY)
        self.start_ts = self.now_ts - self.span
        self.today = now.date()
        # Points are floor(total * rate), as the earning engine computes them without
        # rules; with the rate as a fraction and the total in kopecks it stays in
        # integers: floor(kopecks * num / (den * 100)).
        self.earn_num, self.earn_den = programme.earn_rate.as_integer_ratio()
        self.rate_text = str(programme.earn_rate.normalize())
        # Accruals stay pending for the return window, as purchase recording posts them.
        self.pending_seconds = programme.return_window_days * SECONDS_PER_DAY
        self.welcome_points = programme.welcome_points
        self.rate = PURCHASES_PER_MEMBER / ENROLMENT_MEAN_REMAINING

        # Formatting timestamps is the hot path: a day string plus a time-of-day string.
        self.first_day = self.start_ts // SECONDS_PER_DAY - 1
        # Pending accruals become available up to a return window after now.
        last_day = (self.now_ts + self.pending_seconds) // SECONDS_PER_DAY + 1
        self.days = [
            date.fromordinal(date(1970, 1, 1).toordinal() + day).isoformat()
            for day in range(self.first_day, last_day + 1)
        ]
        self.times = [
            f" {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}+00:00"
            for second in range(SECONDS_PER_DAY)
        ]
        self.now_text = self.ts(self.now_ts)

        self.physical = [store for code, store in stores.items() if code != ONLINE_STORE]
        self.online = stores[ONLINE_STORE]
        self.stores_by_city: dict[str, list[Store]] = {}
        for store in self.physical:
            self.stores_by_city.setdefault(store.city, []).append(store)
        self.cities, self.city_weights = _weights_cumulative(CITIES)
        self.channels, self.channel_weights = _weights_cumulative(CHANNELS)
        self.categories = [
            (str(categories[code].id), prefix, low, high - low, weighed)
            for code, _name, prefix, low, high, _weight, weighed in CATEGORIES
        ]
        self.category_weights = list(accumulate(row[5] for row in CATEGORIES))
        self.ru_female_last = [_ru_female_last_name(name) for name in RU_LAST]
        self.mail_names = {
            name: name.lower().translate(TRANSLIT)
            for name in (*RU_MALE_FIRST, *RU_FEMALE_FIRST, *RU_LAST, *self.ru_female_last,
                         *EN_MALE_FIRST, *EN_FEMALE_FIRST, *EN_LAST)
        }

    def ts(self, epoch: int) -> str:
        """Return epoch seconds as a timestamptz literal."""
        return self.days[epoch // SECONDS_PER_DAY - self.first_day] + self.times[
            epoch % SECONDS_PER_DAY
        ]

    def plan(self, number: int) -> _Plan:
        """Decide enrolment times and purchase counts of chunk ``number``."""
        # One generator per chunk: chunks are independent, so the next one can be
        # generated while the current one is written, and the result stays reproducible.
        rng = random.Random(f"demo_seed:{self.seed}:{number}")
        first = number * self.chunk_size
        enrolled, counts = [], []
        for index in range(first, min(first + self.chunk_size, self.total)):
            share = ((index + rng.random()) / self.total) ** ENROLMENT_GROWTH
            enrolled_ts = min(self.start_ts + int(share * self.span), self.now_ts - 3600)
            enrolled.append(enrolled_ts)
            # Exponential activity: most members buy rarely, a few buy very often.
            remaining = (self.now_ts - enrolled_ts) / self.span
            expected = rng.expovariate(1.0) * self.rate * remaining
            counts.append(min(int(expected + rng.random()), 400))
        anonymous = round(sum(counts) * NON_MEMBER_SHARE / (1 - NON_MEMBER_SHARE))
        return _Plan(number, first, rng, enrolled, counts, anonymous)

    def rows(
        self, plan: _Plan, member_ids: Sequence[int], purchase_ids: Sequence[int],
        referrers: Sequence[int],
    ) -> _Rows:
        """Return the rows of a planned chunk, given the ids reserved for it.

        ``referrers`` are ids of members enrolled before this chunk (the previous one);
        a member who joined by referral is linked to one of them or an earlier one here.
        """
        rng = plan.rng
        out = _Rows(member_ids=member_ids)
        next_purchase = 0
        for position in range(plan.size):
            member_id = member_ids[position]
            count = plan.purchase_counts[position]
            self._member(
                out, rng, member_id, plan.enrolled[position],
                purchase_ids[next_purchase:next_purchase + count],
                referrers, member_ids, position,
            )
            next_purchase += count
        # Non-members' receipts, spread over the whole history.
        for purchase_id in purchase_ids[next_purchase:]:
            moment = self._shop_time(rng, self.start_ts, self.now_ts)
            store = rng.choice(self.physical)
            self._receipt(out, rng, purchase_id, moment, NULL, store.id, "store")
        out.anonymous_purchases = len(purchase_ids) - next_purchase
        return out

    def _shop_time(self, rng: random.Random, low: int, high: int) -> int:
        """Return a moment between low and high, within opening hours when possible."""
        moment = low + int(rng.random() * (high - low))
        moment = moment - moment % SECONDS_PER_DAY + STORE_OPEN_UTC + int(
            rng.random() * STORE_HOURS
        )
        return min(max(moment, low), high)

    def _member(
        self, out: _Rows, rng: random.Random, member_id: int, enrolled_ts: int,
        purchase_ids: Sequence[int], referrers: Sequence[int], chunk_ids: Sequence[int],
        position: int,
    ) -> None:
        """Append one member's row, receipts and ledger to ``out``."""
        random_ = rng.random
        female = random_() < 0.52
        if random_() < 0.72:
            first = rng.choice(RU_FEMALE_FIRST if female else RU_MALE_FIRST)
            last_index = int(random_() * len(RU_LAST))
            last = (self.ru_female_last if female else RU_LAST)[last_index]
            domains = RU_MAIL_DOMAINS
        else:
            first = rng.choice(EN_FEMALE_FIRST if female else EN_MALE_FIRST)
            last = rng.choice(EN_LAST)
            domains = EN_MAIL_DOMAINS
        gender = "" if random_() < 0.08 else ("female" if female else "male")

        mail_first, mail_last = self.mail_names[first], self.mail_names[last]
        style = int(random_() * 4)
        # The id ends the local part, so the address is unique without a lookup.
        local = (
            f"{mail_first}.{mail_last}", f"{mail_first[0]}{mail_last}",
            f"{mail_last}.{mail_first}", f"{mail_first}_{mail_last}",
        )[style]
        email = f"{local}{member_id}@{rng.choice(domains)}" if random_() < 0.9 else ""
        phone = (
            f"79{(member_id * PHONE_MULTIPLIER + PHONE_OFFSET) % 10**9:09d}"
            if random_() < 0.95 else ""
        )
        card = _ean13(f"2{(member_id * CARD_MULTIPLIER + CARD_OFFSET) % 10**11:011d}")
        if random_() < 0.9:
            age_days = int((18 + 62 * random_() * random_() ** 0.3) * 365.25)
            birth = (self.today - timedelta(days=age_days)).isoformat()
        else:
            birth = NULL
        city = self.cities[bisect(self.city_weights, random_() * self.city_weights[-1])]
        channel = self.channels[bisect(self.channel_weights, random_() * self.channel_weights[-1])]
        referrer = NULL
        if channel == Member.Channel.REFERRAL:
            pool = len(referrers) + position
            if pool:
                pick = int(random_() * pool)
                referrer = str(
                    referrers[pick] if pick < len(referrers)
                    else chunk_ids[pick - len(referrers)]
                )
            else:
                channel = Member.Channel.STORE

        # Consent: given at enrolment or later; some withdrew it since.
        consents = []
        for chance in (0.55, 0.4):
            if random_() < chance:
                consents.append(("t", self.ts(enrolled_ts + int(random_() * 900))))
            elif random_() < 0.1:
                consents.append(("f", self.ts(self._shop_time(rng, enrolled_ts, self.now_ts))))
            else:
                consents.append(("f", NULL))
        if not email:
            consents[0] = ("f", NULL)

        # Receipts: a home store, sometimes another one, and some shop online.
        home = self.stores_by_city.get(city) or self.physical
        online_share = 0.6 if channel in ("online", "app") else 0.15 * random_()
        moments = sorted(
            self._shop_time(rng, enrolled_ts, self.now_ts) for _ in purchase_ids
        )
        receipts = []
        for purchase_id, moment in zip(purchase_ids, moments, strict=True):
            roll = random_()
            if roll < online_share:
                store_id, kind = self.online.id, ("online" if random_() < 0.5 else "app")
            elif roll < online_share + 0.1:
                store_id, kind = rng.choice(self.physical).id, "store"
            else:
                store_id, kind = rng.choice(home).id, "store"
            total = self._receipt(out, rng, purchase_id, moment, str(member_id), store_id, kind)
            receipts.append((purchase_id, moment, total))

        balance, last_event = self._ledger(out, rng, member_id, enrolled_ts, channel, receipts)

        status = Member.Status.ACTIVE
        roll = random_()
        if roll < 0.025:
            status = Member.Status.BLOCKED if roll < 0.02 else Member.Status.CLOSED
            reasons = BLOCK_REASONS if status == Member.Status.BLOCKED else CLOSE_REASONS
            # Blocked or closed after the last movement, within a month, not in the future.
            window = min(30 * SECONDS_PER_DAY, self.now_ts - last_event)
            changed = last_event + int(random_() * window)
            out.status_changes.append(
                f"{member_id}\tactive\t{status}\t{rng.choice(reasons)}\t{self.ts(changed)}"
            )
        last_purchase = self.ts(moments[-1]) if moments else NULL
        # Most members read Russian; one in seven chose English (no draw: the data stays put).
        language = "en" if member_id % 7 == 0 else "ru"
        out.members.append(
            f"{member_id}\t{card}\t{first}\t{last}\t{email}\t{phone}\t{birth}\t{gender}\t"
            f"{city}\t{language}\t{self.ts(enrolled_ts)}\t{channel}\t{status}\t{referrer}\t"
            f"{consents[0][0]}\t{consents[0][1]}\t{consents[1][0]}\t{consents[1][1]}\t"
            f"{balance}\t{last_purchase}\t{self.now_text}\t{self.now_text}"
        )

    def _receipt(
        self, out: _Rows, rng: random.Random, purchase_id: int, moment: int,
        member: str, store_id: int, channel: str,
    ) -> int:
        """Append a receipt and its lines to ``out``; return its total in kopecks."""
        random_ = rng.random
        roll = random_()
        count = 1 if roll < 0.35 else 2 if roll < 0.65 else 3 if roll < 0.85 else 4
        weights, categories = self.category_weights, self.categories
        lines, gross = [], 0
        for _ in range(count):
            category_id, prefix, low, spread, weighed = categories[
                bisect(weights, random_() * weights[-1])
            ]
            # Prices end in 0, 50, 90 or 99 kopecks, like on a shelf label.
            unit = (low + int(random_() * spread)) * 100 + (0, 50, 90, 99)[int(random_() * 4)]
            if weighed:
                grams = 250 + int(random_() * 2250)
            else:
                quantity_roll = random_()
                grams = 1000 if quantity_roll < 0.8 else 2000 if quantity_roll < 0.95 else 3000
            amount = unit * grams // 1000
            gross += amount
            lines.append((category_id, f"{prefix}-{int(random_() * 2000) + 1:04d}", grams, amount))
        # Lines hold what was paid, so the total is their sum and the discount is the
        # difference from the shelf prices.
        percent = (5, 10, 15, 20)[int(random_() * 4)] if random_() < 0.2 else 0
        total = items = 0
        append = out.lines.append
        for category_id, sku, grams, amount in lines:
            paid = amount * (100 - percent) // 100
            total += paid
            items += grams
            append(
                f"{purchase_id}\t{sku}\t{category_id}\t{grams // 1000}.{grams % 1000:03d}\t"
                f"{paid // 100}.{paid % 100:02d}"
            )
        out.purchases.append(
            f"{purchase_id}\t{store_id}\t{purchase_id % 7 + 1:02d}-{purchase_id:010d}\t"
            f"{member}\t{channel}\t{self.ts(moment)}\t{_money(total)}\t"
            f"{_money(gross - total)}\t{items // 1000}\t0.00\t{self.now_text}"
        )
        return total

    def _ledger(
        self, out: _Rows, rng: random.Random, member_id: int, enrolled_ts: int,
        channel: str, receipts: list[tuple[int, int, int]],
    ) -> tuple[int, int]:
        """Append a member's ledger in time order; return the balance and the last time."""
        random_ = rng.random
        append = out.ledger.append
        balance, last_event = 0, enrolled_ts
        # Accruals still in their return window, oldest first: (available from, points).
        pending: deque[tuple[int, int]] = deque()
        pending_total = 0

        def spendable(moment: int) -> int:
            """Return the balance less the points still pending at ``moment``."""
            nonlocal pending_total
            while pending and pending[0][0] <= moment:
                pending_total -= pending.popleft()[1]
            return balance - max(0, pending_total)

        if self.welcome_points and random_() < (0.6 if channel in ("app", "online") else 0.3):
            balance = self.welcome_points
            append(
                f"{member_id}\twelcome\t{balance}\t{balance}\t\t{NULL}\twelcome\t"
                f"demo:welcome:{member_id}\t{self.ts(enrolled_ts)}\t{NULL}\t[]"
            )
        redeem_chance = 0.25 if random_() < 0.4 else 0.0
        adjust_after = int(random_() * len(receipts)) if receipts and random_() < 0.03 else -1
        earn_num, earn_den = self.earn_num, self.earn_den
        for position, (purchase_id, moment, total) in enumerate(receipts):
            when = self.ts(moment)
            # Spend available points at the till before this receipt earns new ones.
            if balance >= 300 and redeem_chance and random_() < redeem_chance:
                choices = [a for a in (300, 500, 1000, 2000, 5000) if a <= spendable(moment)]
                if choices:
                    spend = rng.choice(choices)
                    balance -= spend
                    append(
                        f"{member_id}\tredemption\t{-spend}\t{balance}\t\t{purchase_id}\t"
                        f"purchase:{purchase_id}\tdemo:redemption:{purchase_id}\t{when}\t"
                        f"{NULL}\t[]"
                    )
            points = total * earn_num // (earn_den * 100)
            if points:
                balance += points
                available = NULL
                if self.pending_seconds:
                    pending.append((moment + self.pending_seconds, points))
                    pending_total += points
                    available = self.ts(moment + self.pending_seconds)
                append(
                    f"{member_id}\taccrual\t{points}\t{balance}\t\t{purchase_id}\t"
                    f"purchase:{purchase_id}\tdemo:purchase:{purchase_id}\t{when}\t"
                    f"{available}\t{self._explanation(total, points)}"
                )
            last_event = moment
            if position == adjust_after:
                following = receipts[position + 1][1] if position + 1 < len(receipts) else None
                moment = min(
                    moment + 3600 + int(random_() * 3 * SECONDS_PER_DAY),
                    following if following is not None else self.now_ts,
                )
                if spendable(moment) >= 50 and random_() < 0.25:
                    change = -min(spendable(moment), rng.choice((50, 100, 200)))
                    reason = rng.choice(ADJUSTMENTS_DOWN)
                else:
                    change = rng.choice((50, 100, 150, 200, 300, 500))
                    reason = rng.choice(ADJUSTMENTS_UP)
                balance += change
                append(
                    f"{member_id}\tadjustment\t{change}\t{balance}\t{reason}\t{NULL}\t\t"
                    f"demo:adjustment:{member_id}\t{self.ts(moment)}\t{NULL}\t[]"
                )
                last_event = moment
        return balance, last_event

    def _explanation(self, total: int, points: int) -> str:
        """Return an accrual's ``details`` as the earning engine writes them (no rules).

        The base step's points are total × rate to the cent, rounded half even like
        Decimal.quantize; the rounding step rounds them down to whole points.
        """
        quotient, remainder = divmod(total * self.earn_num, self.earn_den)
        if 2 * remainder > self.earn_den or (2 * remainder == self.earn_den and quotient % 2):
            quotient += 1
        raw = _money(quotient)
        return (
            f'[{{"step": "base", "rule": "", "amount": "{_money(total)}", '
            f'"rate": "{self.rate_text}", "points": "{raw}"}}, '
            f'{{"step": "rounding", "mode": "down", "raw": "{raw}", "points": {points}}}]'
        )


# ---------------------------------------------------------------- writing

_TABLES = [
    # (rows attribute, model, columns)
    ("members", Member, MEMBER_COLUMNS),
    ("purchases", Purchase, PURCHASE_COLUMNS),
    ("lines", PurchaseLine, LINE_COLUMNS),
    ("ledger", PointsEntry, LEDGER_COLUMNS),
    ("status_changes", MemberStatusChange, STATUS_CHANGE_COLUMNS),
]


def _columns_check() -> None:
    """Refuse to start when a model gained a required column this command does not fill.

    COPY leaves an unlisted column NULL (Django keeps defaults in Python), so a new
    NOT NULL field would fail deep inside the first chunk; say which one up front.
    """
    missing = []
    for _attribute, model, columns in _TABLES:
        for model_field in model._meta.concrete_fields:
            if (
                model_field.column not in columns
                and not model_field.primary_key
                and not model_field.null
                and not getattr(model_field, "generated", False)
                and model_field.db_default is NOT_PROVIDED
            ):
                missing.append(f"{model.__name__}.{model_field.name}")
    if missing:
        raise CommandError(
            f"demo_seed does not fill {', '.join(missing)}: add it to the command's columns."
        )


class _PostgresWriter:
    """Reserve ids from the sequences and COPY a chunk's rows in one transaction."""

    BATCH = 20_000  # rows per write() call: large enough to be cheap, small to stream

    def __init__(self):
        self.skip_checks = self._checks_skippable()

    def _checks_skippable(self) -> bool:
        """Return whether the chunks may be copied without foreign key checks.

        The rows refer only to rows of the same or an earlier chunk, by construction,
        so the checks can only pass; run at commit they take about 40% of the time.
        ``session_replication_role = replica`` skips them but also skips every other
        trigger, so it is used only when no table written here has an INSERT trigger
        of its own (the ledger's append-only trigger fires on UPDATE and DELETE), and
        only where the role may set it (a superuser, e.g. the benchmark's server).
        """
        tables = [model._meta.db_table for _attribute, model, _columns in _TABLES]
        with connection.cursor() as cursor:
            # tgtype bit 2 (value 4) is TRIGGER_TYPE_INSERT.
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgtype & 4 <> 0 AND tgrelid = ANY(%s::regclass[])",
                [tables],
            )
            if cursor.fetchone()[0]:
                return False
            cursor.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            row = cursor.fetchone()
        return bool(row and row[0])

    def reserve(self, model, count: int) -> Sequence[int]:
        """Return ``count`` fresh ids of ``model``'s table, taken from its sequence."""
        return ids_reserve(model, count)

    def write(self, rows: _Rows) -> None:
        """Copy all tables of one chunk; foreign keys are checked at commit."""
        with transaction.atomic(), connection.cursor() as cursor:
            if self.skip_checks:
                cursor.execute("SET LOCAL session_replication_role = replica")
            for attribute, model, columns in _TABLES:
                data = getattr(rows, attribute)
                if not data:
                    continue
                statement = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for start in range(0, len(data), self.BATCH):
                        copy.write("\n".join(data[start:start + self.BATCH]) + "\n")

    def finish(self) -> None:
        """Refresh the planner's statistics so the first pages use the indexes."""
        with connection.cursor() as cursor:
            for _attribute, model, _columns in _TABLES:
                cursor.execute(f"ANALYZE {model._meta.db_table}")


class _DjangoWriter:
    """The portable path (SQLite): explicit ids and bulk_create in batches.

    Each chunk is generated and written inside one transaction, so the ids taken
    from ``max(id)`` cannot be used by anyone else meanwhile.
    """

    def __init__(self):
        self.next_ids: dict[type, int] = {}

    def reserve(self, model, count: int) -> Sequence[int]:
        """Return ``count`` ids above the table's highest id and any handed out before."""
        highest = model.objects.order_by("-id").values_list("id", flat=True).first() or 0
        first = max(highest + 1, self.next_ids.get(model, 1))
        self.next_ids[model] = first + count
        return range(first, first + count)

    def write(self, rows: _Rows) -> None:
        """Insert the rows through the models, which convert the text values."""
        for attribute, model, columns in _TABLES:
            # JSON arrives as text, ready for COPY; the model field wants the value.
            json_columns = {
                index for index, column in enumerate(columns)
                if isinstance(model._meta.get_field(column.removesuffix("_id")), JSONField)
            }
            objects = []
            for row in getattr(rows, attribute):
                values = [None if value == NULL else value for value in row.split("\t")]
                for index in json_columns:
                    values[index] = json.loads(values[index])
                objects.append(model(**dict(zip(columns, values, strict=True))))
            model.objects.bulk_create(objects, batch_size=1000)

    def finish(self) -> None:
        """Nothing to do: SQLite plans without statistics."""


# ---------------------------------------------------------------- command


class Command(BaseCommand):
    help = (
        "Generate demo stores, categories, members, purchases and points ledgers. "
        "Reproducible with --seed; use --if-empty on every start of a setup script."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=300, help="Members to create.")
        parser.add_argument(
            "--years", type=float, default=2, help="Length of the purchase history."
        )
        parser.add_argument("--seed", type=int, default=42, help="Random seed.")
        parser.add_argument(
            "--if-empty", action="store_true",
            help="Do nothing when any member exists already.",
        )
        parser.add_argument(
            "--chunk-size", type=int, default=10_000,
            help="Members generated and written per transaction (bounds memory).",
        )

    def handle(self, *args, **options):
        total, chunk_size = options["members"], options["chunk_size"]
        if total < 0 or chunk_size < 1 or options["years"] <= 0:
            raise CommandError("--members must be >= 0, --chunk-size >= 1, --years > 0.")
        if options["if_empty"] and Member.objects.exists():
            self.stdout.write("Demo data skipped: the database already has members.")
            return
        _columns_check()
        started = time.monotonic()
        stores = self._stores()
        categories = self._categories()
        generator = _Generator(
            seed=options["seed"], total=total, years=options["years"],
            chunk_size=chunk_size, now=timezone.now(), stores=stores,
            categories=categories, programme=programme_settings_get(),
        )
        postgres = connection.vendor == "postgresql"
        writer = _PostgresWriter() if postgres else _DjangoWriter()
        chunks = -(-total // chunk_size)
        counts = {"members": 0, "purchases": 0, "anonymous": 0, "lines": 0, "ledger": 0}

        def tally(rows: _Rows) -> None:
            counts["members"] += len(rows.members)
            counts["purchases"] += len(rows.purchases)
            counts["anonymous"] += rows.anonymous_purchases
            counts["lines"] += len(rows.lines)
            counts["ledger"] += len(rows.ledger)
            if options["verbosity"] > 1:
                self.stdout.write(
                    f"  {counts['members']:,} members, {time.monotonic() - started:.1f} s"
                )

        if postgres:
            self._pipeline(generator, writer, chunks, tally)
        else:
            referrers: Sequence[int] = ()
            for number in range(chunks):
                with transaction.atomic():
                    plan = generator.plan(number)
                    member_ids = writer.reserve(Member, plan.size)
                    purchase_ids = writer.reserve(Purchase, plan.purchase_total)
                    rows = generator.rows(plan, member_ids, purchase_ids, referrers)
                    writer.write(rows)
                referrers = member_ids
                tally(rows)
        writer.finish()
        self.stdout.write(
            f"Demo data: {counts['members']:,} members, {counts['purchases']:,} purchases "
            f"({counts['anonymous']:,} without a member), {counts['lines']:,} lines, "
            f"{counts['ledger']:,} ledger rows, {len(stores)} stores, "
            f"{len(categories)} categories in {time.monotonic() - started:.1f} s"
        )

    def _pipeline(self, generator: _Generator, writer: _PostgresWriter, chunks, tally):
        """Generate chunk n+1 in a thread while chunk n is copied.

        Python builds rows on one core while PostgreSQL ingests on the other; the
        thread touches no database (ids are reserved here, on this thread's connection).
        """

        def prepare(number: int, referrers: Sequence[int]):
            plan = generator.plan(number)
            member_ids = writer.reserve(Member, plan.size)
            purchase_ids = writer.reserve(Purchase, plan.purchase_total)
            return pool.submit(generator.rows, plan, member_ids, purchase_ids, referrers)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = prepare(0, ()) if chunks else None
            for number in range(chunks):
                rows = pending.result()
                if number + 1 < chunks:
                    pending = prepare(number + 1, rows.member_ids)
                writer.write(rows)
                tally(rows)

    def _stores(self) -> dict[str, Store]:
        """Return the demo stores by code, creating the missing ones."""
        stores = {}
        for code, name, city in STORES:
            stores[code], _created = Store.objects.get_or_create(
                code=code, defaults={"name": name, "city": city}
            )
        return stores

    def _categories(self) -> dict[str, ProductCategory]:
        """Return the demo product categories by code, creating the missing ones."""
        categories = {}
        for code, name, *_rest in CATEGORIES:
            categories[code], _created = ProductCategory.objects.get_or_create(
                code=code, defaults={"name": name}
            )
        return categories
