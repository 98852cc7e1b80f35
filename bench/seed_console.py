#!/usr/bin/env python3
"""Seeds a migrated control-plane database with a realistic archive for the console benchmark.

    bench/seed_console.py --sqlite PATH --tenant bench --targets OUT.json
    bench/seed_console.py --postgres URL --tenant bench --targets OUT.json

Run it after `likeness-control migrate` and `create-admin --tenant TENANT` (the schema, the
tenant and its admin exist) and while no server writes to the database. It adds, with direct
SQL (sqlite3 executemany in one transaction; PostgreSQL: COPY through `psql`, then VACUUM
ANALYZE), rows shaped like the ones the services write:

- 5 more users (editors, a privacy officer, a viewer; no password);
- 10,000 persons (pseudonyms `P-XXXXXXXX`, e-mail/phone/date of birth for some, ~8 % minors,
  guardians, ~1 % never_publish, custom fields, avatars from confirmed faces, a few deleted);
- consents (agreements): ~85 % of the persons have one: active, expiring within the notice period,
  expired, withdrawn, renewed (expired + active); minors with and without a guardian-signed one;
  channels_json as serde writes a Vec<String>; scanned documents for paper consents;
- 100,000 files (assets: ~97 % images, sha256/phash, sizes, legal bases incl. NULL, metadata,
  some exact and near duplicates, ~5 % with 2-3 versions in asset_versions);
- 200,000 faces on them (0-25 per image): confirmed (linked to persons, decided_by/at, enrolled
  templates in face_templates when the person's consent covers face matching), suggested (1-3
  candidates `{"person_id","score","template_id"}` as the matcher writes them), unknown (empty
  candidates, some not identifiable), rejected (+ face_rejections rows), a few drawn by hand;
- jobs: one done `suggest_faces` per image, a few failed jobs (no queued ones: the server's
  workers would pick them up during the benchmark);
- the audit log those actions write (asset.upload, faces.detect, asset.legal_basis, person.create,
  agreement.create/withdraw, face.confirm/reject/enroll, asset.new_version), hash-chained exactly
  as the service does (the existing entries are kept and the whole chain is re-hashed in time
  order, so `likeness-control audit verify` passes).

Deterministic (--seed). Writes the IDs the benchmark requests (a file with several faces, cursors
of deep pages, a search term) to --targets as JSON.
"""

import argparse
import datetime as dt
import hashlib
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

CHANNELS = ["web", "print", "social", "internal"]
MODEL_VERSION = "yunet_s+mobilefacenet_128"
FIRST = ("Anna Erik Maria Lars Karin Johan Eva Anders Sara Per Emma Nils Lena Olof Ida Jonas "
         "Hanna Oskar Elin Gustav Maja Viktor Klara Axel Sofia Hugo Alma Liam Ebba Noah Lotte "
         "Daan Sanne Bram Fleur Sem Noor Ruben Julia Thijs Saga Elias Astrid Leo Freja Arvid "
         "Wilma Ali Fatima Omar Yasmin Mehmet Aylin Piotr Zofia Mateo Lucia Kenji Aiko").split()
LAST = ("Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson "
        "Pettersson Jonsson Jansen de_Vries van_Dijk Bakker Visser Smit Meijer de_Boer Mulder "
        "Bos Vos Peters Hendriks Lindqvist Berg Lund Holm Ek Sandberg Forsberg Nyberg Hassan "
        "Yilmaz Kowalski Nowak Garcia Rossi Tanaka Virtanen Hansen Jensen Novak Horvat").split()
EVENTS = ["graduation", "open-day", "staff-party", "campus", "conference", "sports-day",
          "board-meeting", "concert", "press", "portraits", "summer-school", "award"]
PHOTOGRAPHERS = ["Kim Holm", "Ana Ruiz", "Pieter Smit", "Lea Wong", None, None, None]


def fmt_ts(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def fmt_date(d):
    return d.strftime("%Y-%m-%d")


def iso_ts(t):
    """serde's (chrono) form of a NaiveDateTime in audit details."""
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ".%06d" % t.microsecond
    return s


class Ids:
    """UUID v7 strings whose time part is the row's creation time (as db::new_id at that time)."""

    def __init__(self, rng):
        self.rng = rng

    def at(self, t):
        ms = int(t.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
        r = self.rng.getrandbits(74)
        rand_a, rand_b = r >> 62, r & ((1 << 62) - 1)
        v = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
        return str(uuid.UUID(int=v))


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact(v):
    """serde_json::to_string of a struct/Vec (field order kept, no spaces)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


class Audit:
    def __init__(self):
        self.events = []  # (at, tenant, user_id, label, ip, action, object_type, object_id, detail)

    def add(self, at, who, action, otype, oid, detail):
        self.events.append((at, who[0], who[1], who[2], who[3], action, otype, oid, detail))

    def chain(self, existing):
        """All entries (existing + seeded) in time order, re-numbered and re-hashed."""
        evs = list(existing) + self.events
        evs.sort(key=lambda e: e[0])
        prev = "0" * 64
        rows = []
        for seq, (at, tenant, user, label, ip, action, otype, oid, detail) in enumerate(evs, 1):
            content = canonical({
                "tenant_id": tenant, "at": at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                "actor_user_id": user, "actor_label": label, "ip": ip, "action": action,
                "object_type": otype, "object_id": oid, "detail": detail,
            })
            h = hashlib.sha256((prev + content).encode()).hexdigest()
            rows.append((seq, tenant, fmt_ts(at), user, label, ip, action, otype, oid,
                         canonical(detail), prev, h))
            prev = h
        return rows


def generate(tenant_id, admin, now, n_assets, n_persons, n_faces, seed):
    rng = random.Random(seed)
    ids = Ids(rng)
    today = now.date()
    audit = Audit()
    T = {k: [] for k in ["users", "persons", "agreements", "agreement_documents", "assets",
                         "asset_versions", "faces", "face_rejections", "face_templates", "jobs"]}
    start = now - dt.timedelta(days=3 * 365)

    def rand_time(a, b):
        span = (b - a).total_seconds()
        return a + dt.timedelta(seconds=rng.random() * span, microseconds=rng.randrange(1, 999999))

    def hexs(n):
        return "%0*x" % (n, rng.getrandbits(4 * n))

    # Users.
    users = []
    for i, (role, name) in enumerate([("editor", "Editor One"), ("editor", "Editor Two"),
                                      ("editor", "Photo Desk"),
                                      ("privacy_officer", "Privacy Officer"),
                                      ("viewer", "Viewer")]):
        t = start + dt.timedelta(days=i)
        uid = ids.at(t)
        email = name.lower().replace(" ", ".") + "@bench.test"
        T["users"].append((uid, tenant_id, email, None, role, name, False, fmt_ts(t)))
        users.append((uid, email, role))
    editors = [u for u in users if u[2] == "editor"] + [admin]
    officer = [u for u in users if u[2] == "privacy_officer"][0]

    def who(u):
        return (tenant_id, u[0], u[1], "10.0.0.%d" % (2 + users.index(u) if u in users else 1))

    matcher_who = (tenant_id, None, "matcher", None)

    # Persons.
    persons = []  # dicts
    pseudonyms = set()
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    for i in range(n_persons):
        created = rand_time(start, now - dt.timedelta(days=2))
        pid = ids.at(created)
        while True:
            ps = "P-" + "".join(rng.choice(alphabet) for _ in range(8))
            if ps not in pseudonyms:
                pseudonyms.add(ps)
                break
        first, last = rng.choice(FIRST), rng.choice(LAST).replace("_", " ")
        name = f"{first} {last}"
        r = rng.random()
        minor = r < 0.08
        dob = None
        if minor:
            dob = today - dt.timedelta(days=rng.randrange(5 * 365, 17 * 365 + 300))
        elif r < 0.6:
            dob = today - dt.timedelta(days=rng.randrange(19 * 365, 80 * 365))
        email = (f"{first}.{last}.{i}@example.org".lower().replace(" ", "")
                 if rng.random() < 0.7 else None)
        phone = "+4670%07d" % rng.randrange(10 ** 7) if rng.random() < 0.3 else None
        g_name = g_contact = None
        if minor and rng.random() < 0.7:
            g_name = f"{rng.choice(FIRST)} {last}"
            g_contact = f"guardian.{i}@example.org"
        custom = {}
        if rng.random() < 0.3:
            custom = {"department": rng.choice(["Staff", "Students", "Alumni", "Guests"])}
        if rng.random() < 0.05:
            custom["note"] = "prefers not to be photographed in close-up"
        deleted = None
        if rng.random() < 0.003:
            deleted = fmt_ts(rand_time(created, now))
        p = {
            "id": pid, "name": name, "pseudonym": ps, "email": email, "phone": phone,
            "dob": dob, "minor": minor, "g_name": g_name, "g_contact": g_contact,
            "never_publish": rng.random() < 0.01, "custom": compact(custom),
            "created": created, "updated": rand_time(created, now) if rng.random() < 0.2 else created,
            "deleted": deleted, "avatar": None, "fm_active": False, "creator": rng.choice(editors),
        }
        persons.append(p)
        audit.add(created, who(p["creator"]), "person.create", "person", pid, {"pseudonym": ps})
    live = [p for p in persons if p["deleted"] is None]
    # A guardian registered as a person for some minors.
    adults = [p for p in live if not p["minor"]]
    for p in live:
        if p["minor"] and p["g_name"] is None and rng.random() < 0.5:
            p["g_person"] = rng.choice(adults)["id"]

    # Consents.
    def channels():
        r = rng.random()
        if r < 0.6:
            return list(CHANNELS)
        if r < 0.85:
            return ["web", "internal"]
        if r < 0.95:
            return ["internal"]
        return ["web", "print"]

    def agreement(p, valid_from, valid_until, withdrawn=None, guardian=False):
        created = dt.datetime.combine(valid_from, dt.time(9)) + dt.timedelta(
            seconds=rng.randrange(8 * 3600), microseconds=rng.randrange(1, 999999))
        created = min(max(created, p["created"] + dt.timedelta(seconds=5)), now)
        aid = ids.at(created)
        source = rng.choice(["paper_scan", "paper_scan", "digital", "audio_recording"])
        fm = rng.random() < 0.8
        ch = channels()
        note = rng.choice([None, None, None, "signed at the event", "renewal"])
        text = hexs(64) if source == "digital" else None
        wd_at = wd_reason = None
        if withdrawn is not None:
            wd_at = withdrawn
            wd_reason = rng.choice(["asked by e-mail", "left the organisation",
                                    "asked by phone", "guardian withdrew"])
        T["agreements"].append((aid, tenant_id, p["id"], compact(ch), fmt_date(valid_from),
                                fmt_date(valid_until) if valid_until else None, source, fm,
                                guardian, text, note,
                                fmt_ts(wd_at) if wd_at else None, wd_reason, officer[0],
                                fmt_ts(created)))
        audit.add(created, who(officer), "agreement.create", "agreement", aid, {
            "person_id": p["id"], "channels": ch, "valid_from": fmt_date(valid_from),
            "valid_until": fmt_date(valid_until) if valid_until else None, "source": source,
            "covers_face_matching": fm, "signed_by_guardian": guardian})
        if source == "paper_scan" and rng.random() < 0.7:
            dcreated = created + dt.timedelta(seconds=rng.randrange(5, 300))
            T["agreement_documents"].append((ids.at(dcreated), tenant_id, aid,
                                             f"consent-{p['pseudonym']}.pdf", "application/pdf",
                                             rng.randrange(80_000, 2_000_000), hexs(64), hexs(32),
                                             fmt_ts(dcreated)))
        if wd_at is not None:
            audit.add(wd_at, who(officer), "agreement.withdraw", "agreement", aid, {
                "person_id": p["id"], "at": iso_ts(wd_at), "reason": wd_reason,
                "face_matching_ended": fm})
        active = (wd_at is None and valid_from <= today
                  and (valid_until is None or valid_until >= today))
        # agreements::has_face_matching_consent: a person who was a minor on the signing day
        # (the earlier of valid_from and the day it was recorded) needs a guardian's signature.
        signing = min(valid_from, created.date())
        dob = p["dob"]
        minor_at_signing = dob is not None and (
            (signing.year - dob.year - ((signing.month, signing.day) < (dob.month, dob.day))) < 18)
        if active and fm and (not minor_at_signing or guardian):
            p["fm_active"] = True
        if active:
            p["consent_channels"] = ch

    def from_day(p):
        lo = p["created"].date()
        return lo + dt.timedelta(days=rng.randrange(max(1, (today - lo).days)))

    counts = {}
    for p in live:
        r = rng.random()
        if p["minor"]:
            kind = "none" if r < 0.2 else ("unsigned" if r < 0.5 else "guardian")
        else:
            kind = ("none" if r < 0.10 else "active" if r < 0.72 else "expiring" if r < 0.78
                    else "expired" if r < 0.88 else "withdrawn" if r < 0.94 else "renewed")
        counts[kind] = counts.get(kind, 0) + 1
        p["consent"] = kind
        if kind == "none":
            continue
        vf = from_day(p)
        if kind in ("active", "guardian", "unsigned"):
            vu = None if rng.random() < 0.4 else today + dt.timedelta(days=rng.randrange(31, 3 * 365))
            agreement(p, vf, vu, guardian=(kind == "guardian"))
        elif kind == "expiring":
            agreement(p, vf, today + dt.timedelta(days=rng.randrange(0, 30)))
        elif kind == "expired":
            vu = vf + dt.timedelta(days=rng.randrange(30, 700))
            vu = min(vu, today - dt.timedelta(days=1))
            vf = min(vf, vu)
            agreement(p, vf, vu)
        elif kind == "withdrawn":
            wd = rand_time(dt.datetime.combine(vf, dt.time(12)), now - dt.timedelta(hours=1))
            wd = min(wd, now - dt.timedelta(hours=1))
            agreement(p, vf, None, withdrawn=wd)
        elif kind == "renewed":
            lo = p["created"].date()
            old_from = lo
            old_until = lo + dt.timedelta(days=max(1, (today - lo).days // 2))
            agreement(p, old_from, old_until)
            agreement(p, old_until + dt.timedelta(days=1), None)

    # Assets.
    LEGAL = ([("consent", 55), (None, 20), ("legitimate_interest", 8), ("contract", 5),
              ("external_agreement", 4), ("public_interest", 3),
              ("exempt_no_identifiable_persons", 3), ("exempt_historical", 1),
              ("exempt_artistic_journalistic", 1)])
    legal_vals = [v for v, _ in LEGAL]
    legal_w = [w for _, w in LEGAL]
    assets = []
    times = sorted(rand_time(start, now - dt.timedelta(hours=2)) for _ in range(n_assets))
    for i, created in enumerate(times):
        aid = ids.at(created)
        video = rng.random() < 0.03
        event = rng.choice(EVENTS)
        if video:
            kind, mime, fname = "video", "video/mp4", f"{event}-{created:%Y%m%d}-{i:06d}.mp4"
            w = h = None
            ph = None
            size = rng.randrange(5_000_000, 250_000_000)
        else:
            kind = "image"
            png = rng.random() < 0.05
            mime = "image/png" if png else "image/jpeg"
            fname = (f"IMG_{i:06d}.{'png' if png else 'jpg'}" if rng.random() < 0.5
                     else f"{event}-{created:%Y-%m-%d}-{i % 1000:03d}.{'png' if png else 'jpg'}")
            w, h = rng.choice([(6000, 4000), (4000, 6000), (5472, 3648), (3000, 2000),
                               (1920, 1280), (2048, 1365), (4032, 3024)])
            ph = hexs(16)
            size = rng.randrange(300_000, 14_000_000)
        basis = rng.choices(legal_vals, legal_w)[0]
        meta = {}
        if rng.random() < 0.4:
            meta = {"event": event}
            ph_name = rng.choice(PHOTOGRAPHERS)
            if ph_name:
                meta["photographer"] = ph_name
        a = {"id": aid, "kind": kind, "fname": fname, "mime": mime, "size": size,
             "sha": hexs(64), "phash": ph, "w": w, "h": h, "blob": hexs(32),
             "thumb": hexs(32), "basis": basis,
             "note": "event photo, notice given" if basis == "legitimate_interest" and rng.random() < 0.5 else None,
             "meta": canonical(meta), "version": 1, "created": created, "updated": created,
             "uploader": rng.choice(editors)}
        assets.append(a)
    # Exact and near duplicates.
    images = [a for a in assets if a["kind"] == "image"]
    for _ in range(300):
        a, b = rng.sample(images, 2)
        b["sha"], b["phash"], b["size"] = a["sha"], a["phash"], a["size"]
    for _ in range(600):
        a, b = rng.sample(images, 2)
        v = int(a["phash"], 16)
        for bit in rng.sample(range(64), rng.randrange(1, 5)):
            v ^= 1 << bit
        b["phash"] = "%016x" % v
    # Versions.
    for a in assets:
        if rng.random() < 0.05:
            a["version"] = rng.choice([2, 2, 3])
    showcase = images[len(images) // 2]
    showcase["version"] = 3
    showcase["basis"] = "consent"
    dup = images[len(images) // 2 + 7]
    dup["sha"], dup["phash"] = showcase["sha"], showcase["phash"]

    for a in assets:
        t = a["created"]
        for v in range(1, a["version"] + 1):
            blob = a["blob"] if v == a["version"] else hexs(32)
            sha = a["sha"] if v == a["version"] else hexs(64)
            T["asset_versions"].append((ids.at(t), a["id"], tenant_id, v, blob, sha, a["size"],
                                        fmt_ts(t)))
            if v == 1:
                audit.add(t, who(a["uploader"]), "asset.upload", "asset", a["id"], {
                    "filename": a["fname"], "sha256": sha, "size_bytes": a["size"],
                    "kind": a["kind"], "duplicates": 0})
            else:
                audit.add(t, who(a["uploader"]), "asset.new_version", "asset", a["id"], {
                    "version": v, "sha256": sha, "size_bytes": a["size"]})
            if v < a["version"]:
                t = rand_time(t, min(now - dt.timedelta(hours=1), t + dt.timedelta(days=60)))
        a["updated"] = t
        if a["basis"] is not None:
            bt = a["created"] + dt.timedelta(minutes=rng.randrange(1, 600))
            audit.add(bt, who(a["uploader"]), "asset.legal_basis", "asset", a["id"], {
                "old": {"legal_basis": None, "note": None},
                "new": {"legal_basis": a["basis"], "note": a["note"]}})
        T["assets"].append((a["id"], tenant_id, a["kind"], a["fname"], a["mime"], a["size"],
                            a["sha"], a["phash"], a["w"], a["h"], a["blob"], a["thumb"],
                            a["basis"], a["note"], a["meta"], a["version"], a["uploader"][0],
                            fmt_ts(a["created"]), fmt_ts(a["updated"])))

    # Faces: counts per image (0-25), scaled to n_faces in total.
    dist = [(0, 33), (1, 27), (2, 16), (3, 9), (4, 5), (5, 3), (6, 2), (8, 2), (12, 1.5),
            (18, 1), (25, 0.5)]
    fc = {a["id"]: rng.choices([c for c, _ in dist], [w for _, w in dist])[0] for a in images}
    fc[showcase["id"]] = 9
    total = sum(fc.values())
    keys = [a["id"] for a in images if a is not showcase]
    while total != n_faces:
        k = rng.choice(keys)
        if total < n_faces and fc[k] < 25:
            fc[k] += 1
            total += 1
        elif total > n_faces and fc[k] > 0:
            fc[k] -= 1
            total -= 1
    # Who appears: a few persons very often (Zipf-like weights).
    cum_weights = list(itertools.accumulate(1.0 / (r + 1) ** 0.8 for r in range(len(live))))
    enrolled = [p for p in live if p["fm_active"]]
    template_ids = {}
    next_template = [1]

    def template_of(p):
        if p["id"] not in template_ids:
            template_ids[p["id"]] = next_template[0]
            next_template[0] += 1
        return template_ids[p["id"]]

    def cands(n, exclude=()):
        out = []
        for p in rng.sample(enrolled, min(len(enrolled), n + len(exclude) + 2)):
            if p["id"] not in exclude and len(out) < n:
                out.append(p)
        scores = sorted((round(rng.uniform(0.45, 0.85), 4) for _ in out), reverse=True)
        return [{"person_id": p["id"], "score": s, "template_id": template_of(p)}
                for p, s in zip(out, scores)]

    person_faces = {}
    for a in images:
        n = fc[a["id"]]
        if n == 0:
            continue
        detected_at = a["created"] + dt.timedelta(seconds=rng.uniform(2, 40))
        if a is showcase:
            statuses = ["confirmed"] * 4 + ["suggested"] * 2 + ["unknown"] * 2 + ["rejected"]
        else:
            statuses = rng.choices(["confirmed", "suggested", "unknown", "rejected"],
                                   [50, 12, 30, 8], k=n)
        on_asset = set()
        w, h = a["w"], a["h"]
        for k, status in enumerate(statuses):
            fid = ids.at(detected_at)
            s = rng.uniform(0.03, 0.22) * min(w, h)
            x1 = round(rng.uniform(0, w - s), 1)
            y1 = round(rng.uniform(0, h - s), 1)
            x2, y2 = round(x1 + s, 1), round(y1 + s * 1.2 if y1 + s * 1.2 <= h else h, 1)
            manual = rng.random() < 0.02 and status in ("confirmed", "unknown")
            identifiable = True
            small = s < 60
            sharp = round(rng.uniform(20, 900), 1)
            blurry = sharp < 60
            if status == "unknown" and (small or blurry or rng.random() < 0.25):
                identifiable = False
            if small or blurry:
                identifiable = False if status == "unknown" else identifiable
            quality = None if manual else compact({
                "face_size": round(min(x2 - x1, y2 - y1), 1), "sharpness": sharp,
                "too_small": small, "too_blurry": blurry, "identifiable": identifiable})
            lm = None if manual else compact([[round(x1 + s * fx, 1), round(y1 + s * fy, 1)] for fx, fy in
                                              [(0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8)]])
            score = None if manual else round(rng.uniform(0.6, 0.99), 4)
            person = None
            cj = "[]"
            decided_by = decided_at = None
            enrolled_flag = False
            if status == "confirmed":
                while True:
                    p = rng.choices(live, cum_weights=cum_weights)[0]
                    if p["id"] not in on_asset:
                        break
                on_asset.add(p["id"])
                person = p["id"]
                if not manual:
                    c = cands(rng.randrange(0, 3), exclude=(p["id"],))
                    if p["fm_active"]:
                        c = [{"person_id": p["id"], "score": round(rng.uniform(0.5, 0.9), 4),
                              "template_id": template_of(p)}] + c
                        c.sort(key=lambda x: -x["score"])
                    cj = compact(c)
                u = rng.choice(editors)
                decided_by = u[0]
                decided_at = detected_at + dt.timedelta(
                    seconds=rng.uniform(60, 30 * 86400))
                decided_at = min(decided_at, now - dt.timedelta(minutes=5))
                audit.add(decided_at, who(u), "face.confirm", "face", fid, {
                    "person_id": person, "asset_id": a["id"],
                    "face_matching_consent": p["fm_active"]})
                person_faces.setdefault(person, []).append(fid)
                if p["fm_active"] and not manual:
                    enrolled_flag = True
                    tid = next_template[0]
                    next_template[0] += 1
                    T["face_templates"].append((tid, tenant_id, fid, person,
                                                fmt_ts(decided_at + dt.timedelta(seconds=1))))
                    audit.add(decided_at + dt.timedelta(seconds=1), matcher_who, "face.enroll",
                              "face", fid, {"person_id": person, "templates": [tid]})
            elif status == "suggested":
                c = cands(rng.choice([1, 1, 1, 2, 3]))
                cj = compact(c)
                if rng.random() < 0.1:
                    rej = rng.choice(enrolled)
                    if all(x["person_id"] != rej["id"] for x in c):
                        u = rng.choice(editors)
                        rt = min(detected_at + dt.timedelta(days=rng.uniform(1, 30)),
                                 now - dt.timedelta(minutes=5))
                        T["face_rejections"].append((fid, rej["id"], tenant_id, u[0], fmt_ts(rt)))
                        decided_by, decided_at = u[0], rt
                        audit.add(rt, who(u), "face.reject", "face", fid,
                                  {"person_id": rej["id"], "asset_id": a["id"]})
            elif status == "rejected":
                u = rng.choice(editors)
                rt = min(detected_at + dt.timedelta(days=rng.uniform(1, 30)),
                         now - dt.timedelta(minutes=5))
                for rej in rng.sample(enrolled, rng.choice([1, 1, 2])):
                    T["face_rejections"].append((fid, rej["id"], tenant_id, u[0], fmt_ts(rt)))
                    audit.add(rt, who(u), "face.reject", "face", fid,
                              {"person_id": rej["id"], "asset_id": a["id"]})
                decided_by, decided_at = u[0], rt
            if manual:
                decided_by = decided_by or a["uploader"][0]
                decided_at = decided_at or detected_at
            T["faces"].append((fid, tenant_id, a["id"], "manual" if manual else "detected",
                               status, person, x1, y1, x2, y2, lm, score, identifiable, quality,
                               cj, None if manual else MODEL_VERSION, enrolled_flag, decided_by,
                               fmt_ts(decided_at) if decided_at else None, fmt_ts(detected_at)))
        audit.add(detected_at, matcher_who, "faces.detect", "asset", a["id"], {
            "faces": n, "added": n, "updated": 0, "removed": 0, "model_version": MODEL_VERSION})
    for a in images:
        if fc[a["id"]] == 0:
            audit.add(a["created"] + dt.timedelta(seconds=3), matcher_who, "faces.detect",
                      "asset", a["id"], {"faces": 0, "added": 0, "updated": 0, "removed": 0,
                                         "model_version": MODEL_VERSION})

    # Persons rows (avatar: one of their confirmed faces).
    for p in persons:
        f = person_faces.get(p["id"])
        avatar = rng.choice(f) if f and rng.random() < 0.9 else None
        T["persons"].append((p["id"], tenant_id, p["name"], p["pseudonym"], p["email"],
                             p["phone"], fmt_date(p["dob"]) if p["dob"] else None,
                             p.get("g_person"), p["g_name"], p["g_contact"], p["never_publish"],
                             p["custom"], avatar, fmt_ts(p["created"]), fmt_ts(p["updated"]),
                             p["deleted"]))

    # Jobs: one done suggest_faces per image; a few failed ones.
    for a in images:
        t = a["created"]
        T["jobs"].append((ids.at(t), tenant_id, "suggest_faces",
                          compact({"asset_id": a["id"], "version": 1}), "done", 1, fmt_ts(t),
                          None, None, None, fmt_ts(t), fmt_ts(t + dt.timedelta(seconds=3))))
    failed = [("suggest_faces", lambda: {"asset_id": rng.choice(images)["id"], "version": 1},
               "matcher unavailable: transport error: tcp connect error: Connection refused (os error 111)"),
              ("enroll_face", lambda: {"face_id": rng.choice(T["faces"])[0]},
               "matcher error: status: Unavailable, message: \"gallery is being rebuilt\""),
              ("remove_person_templates", lambda: {"person_id": rng.choice(live)["id"]},
               "matcher unavailable: deadline has elapsed")]
    for i in range(14):
        kind, payload, err = failed[i % 3]
        t = now - dt.timedelta(hours=rng.uniform(1, 72))
        T["jobs"].append((ids.at(t), tenant_id, kind, compact(payload()), "failed", 8,
                          fmt_ts(t + dt.timedelta(minutes=30)), None, None, err, fmt_ts(t),
                          fmt_ts(t + dt.timedelta(minutes=30))))

    # Targets for the benchmark.
    by_created = sorted(assets, key=lambda a: (a["created"], a["id"]))
    live_sorted = sorted(live, key=lambda p: (p["name"], p["id"]))
    def cursor(ts, id_):
        """`<micros since the epoch>~<id>`: the keyset cursor of the console's lists."""
        micros = (parse_ts(ts) - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
        return f"{micros}~{id_}"

    suggested = sorted(((r[19], r[0]) for r in T["faces"] if r[4] == "suggested"), reverse=True)
    files_desc = sorted(((r[17], r[0]) for r in T["assets"]), reverse=True)
    targets = {
        "tenant_id": tenant_id,
        # Cursors 80 % (review queue) and 90 % (files) deep into the newest-first lists.
        "review_deep_cursor": cursor(*suggested[int(len(suggested) * 0.8)]),
        "review_suggested_total": len(suggested),
        "files_deep_cursor": cursor(*files_desc[int(len(files_desc) * 0.9)]),
        "file_with_faces": showcase["id"],
        "file_faces": fc[showcase["id"]],
        # Cursor-style deep pages: the asset 90,000 places into each ordering.
        "files_deep_after_id_asc": by_created[int(len(by_created) * 0.9)]["id"],
        "files_deep_after_id_desc": by_created[int(len(by_created) * 0.1)]["id"],
        "persons_deep_after_name": live_sorted[int(len(live_sorted) * 0.9)]["id"],
        "persons_deep_after_name_value": live_sorted[int(len(live_sorted) * 0.9)]["name"],
        "person_search": rng.choice([n for n in LAST if "_" not in n]).lower()[:5],
        "person_with_faces": max(person_faces, key=lambda k: len(person_faces[k])),
        "person_with_faces_count": max(len(v) for v in person_faces.values()),
        # A person of median face count (among those with faces).
        "person_typical": sorted(person_faces, key=lambda k: (len(person_faces[k]), k))[
            len(person_faces) // 2],
        "person_typical_count": sorted(len(v) for v in person_faces.values())[
            len(person_faces) // 2],
        "consent_kinds": counts,
        "counts": {k: len(v) for k, v in T.items()},
        "audit_entries": len(audit.events),
    }
    return T, audit, targets


COLUMNS = {
    "users": "id tenant_id email password_hash role display_name disabled created_at",
    "persons": ("id tenant_id name pseudonym email phone date_of_birth guardian_person_id "
                "guardian_name guardian_contact never_publish custom_fields_json avatar_face_id "
                "created_at updated_at deleted_at"),
    "agreements": ("id tenant_id person_id channels_json valid_from valid_until source "
                   "covers_face_matching signed_by_guardian text_sha256 note withdrawn_at "
                   "withdrawal_reason created_by created_at"),
    "agreement_documents": "id tenant_id agreement_id filename mime size_bytes sha256 blob_key created_at",
    "assets": ("id tenant_id kind filename mime size_bytes sha256 phash width height blob_key "
               "thumb_blob_key legal_basis legal_basis_note metadata_json current_version "
               "uploaded_by created_at updated_at"),
    "asset_versions": "id asset_id tenant_id version blob_key sha256 size_bytes created_at",
    "faces": ("id tenant_id asset_id source status person_id box_x1 box_y1 box_x2 box_y2 "
              "landmarks_json score identifiable quality_json candidates_json model_version "
              "template_enrolled decided_by decided_at created_at"),
    "face_rejections": "face_id person_id tenant_id rejected_by rejected_at",
    "face_templates": "template_id tenant_id face_id person_id created_at",
    "jobs": ("id tenant_id kind payload_json status attempts run_after locked_by locked_at "
             "last_error created_at updated_at"),
    "audit_log": ("seq tenant_id at actor_user_id actor_label ip action object_type object_id "
                  "detail_json prev_hash hash"),
}
# Insertion order (foreign keys).
ORDER = ["users", "persons", "agreements", "agreement_documents", "assets", "asset_versions",
         "faces", "face_rejections", "face_templates", "jobs"]

AUDIT_SELECT = ("SELECT at, tenant_id, actor_user_id, actor_label, ip, action, object_type, "
                "object_id, detail_json FROM audit_log ORDER BY seq")


def parse_ts(s):
    s = s.replace("T", " ")
    for f in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(s, f)
        except ValueError:
            pass
    raise ValueError(f"bad timestamp {s!r}")


class Sqlite:
    def __init__(self, path):
        self.c = sqlite3.connect(path, isolation_level=None)
        self.c.execute("PRAGMA busy_timeout = 10000")
        self.c.execute("PRAGMA foreign_keys = ON")

    def query(self, sql, args=()):
        return self.c.execute(sql, args).fetchall()

    def existing_audit(self):
        return [(parse_ts(r[0]),) + tuple(r[1:8]) + (json.loads(r[8]),)
                for r in self.query(AUDIT_SELECT)]

    def load(self, tables, audit_rows):
        c = self.c
        c.execute("BEGIN IMMEDIATE")
        for name in ORDER:
            cols = COLUMNS[name].split()
            c.executemany(f"INSERT INTO {name} ({', '.join(cols)}) VALUES "
                          f"({', '.join('?' * len(cols))})", tables[name])
        c.execute("DELETE FROM audit_log")
        cols = COLUMNS["audit_log"].split()
        c.executemany(f"INSERT INTO audit_log ({', '.join(cols)}) VALUES "
                      f"({', '.join('?' * len(cols))})", audit_rows)
        c.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                  (audit_rows[-1][0], audit_rows[-1][-1]))
        c.execute("COMMIT")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def copy_escape(v):
    if v is None:
        return "\\N"
    if v is True:
        return "t"
    if v is False:
        return "f"
    s = str(v)
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


class Postgres:
    def __init__(self, url):
        self.url = url

    def psql(self, *args, stdin=None):
        r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", self.url, *args],
                           input=stdin, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"seed_console.py: psql failed: {r.stderr.strip()}")
        return r.stdout

    def query(self, sql, args=()):
        for a in args:
            sql = sql.replace("?", "'" + str(a).replace("'", "''") + "'", 1)
        out = self.psql("-At", "-F", "\t", "-c", sql)
        return [tuple(None if x == "" else x for x in line.split("\t"))
                for line in out.splitlines() if line]

    def existing_audit(self):
        sql = AUDIT_SELECT.replace("SELECT at,", "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'),")
        return [(parse_ts(r[0]),) + tuple(r[1:8]) + (json.loads(r[8]),)
                for r in self.query(sql)]

    def load(self, tables, audit_rows):
        with tempfile.TemporaryDirectory() as tmp:
            script = ["BEGIN;"]
            for name in ORDER + ["audit_log"]:
                rows = audit_rows if name == "audit_log" else tables[name]
                path = os.path.join(tmp, name + ".tsv")
                with open(path, "w", encoding="utf-8") as f:
                    for r in rows:
                        f.write("\t".join(copy_escape(v) for v in r))
                        f.write("\n")
                if name == "audit_log":
                    script.append("DELETE FROM audit_log;")
                cols = ", ".join(COLUMNS[name].split())
                script.append(f"\\copy {name} ({cols}) FROM '{path}'")
            last = audit_rows[-1]
            script.append(f"UPDATE audit_head SET seq = {last[0]}, hash = '{last[-1]}' WHERE id = 1;")
            script.append("COMMIT;")
            script.append("VACUUM ANALYZE;")
            self.psql("-f", "-", stdin="\n".join(script) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--sqlite", help="SQLite database file")
    g.add_argument("--postgres", help="PostgreSQL URL")
    ap.add_argument("--tenant", required=True, help="tenant slug (created by create-admin)")
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--faces", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--targets", help="write the benchmark's IDs here (JSON)")
    ap.add_argument("--analyze", action="store_true",
                    help="SQLite: run ANALYZE after loading (the server never does; PostgreSQL is "
                         "always VACUUM ANALYZEd, as autovacuum would after a bulk load)")
    a = ap.parse_args()

    t0 = time.monotonic()
    db = Sqlite(a.sqlite) if a.sqlite else Postgres(a.postgres)
    rows = db.query("SELECT id FROM tenants WHERE slug = ?", (a.tenant,))
    if not rows:
        sys.exit(f"seed_console.py: no tenant {a.tenant!r}: run create-admin first")
    tenant_id = rows[0][0]
    if db.query("SELECT id FROM assets WHERE tenant_id = ? LIMIT 1", (tenant_id,)):
        sys.exit(f"seed_console.py: tenant {a.tenant!r} has assets already: seed a fresh database")
    admin = db.query("SELECT id, email FROM users WHERE tenant_id = ? AND role = 'admin' "
                     "ORDER BY created_at LIMIT 1", (tenant_id,))[0]
    admin = (admin[0], admin[1], "admin")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    tables, audit, targets = generate(tenant_id, admin, now, a.assets, a.persons, a.faces, a.seed)
    audit_rows = audit.chain(db.existing_audit())
    t1 = time.monotonic()
    db.load(tables, audit_rows)
    if a.analyze and a.sqlite:
        db.c.execute("ANALYZE")
    t2 = time.monotonic()
    targets["audit_log_rows"] = len(audit_rows)
    targets["seconds_generate"] = round(t1 - t0, 1)
    targets["seconds_load"] = round(t2 - t1, 1)
    print(f"seed_console.py: generated in {t1 - t0:.1f} s, loaded in {t2 - t1:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in targets["counts"].items())
          + f", audit_log {len(audit_rows)}", file=sys.stderr)
    if a.targets:
        with open(a.targets, "w", encoding="utf-8") as f:
            json.dump(targets, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
