"""Deterministic synthetic households and residents for the demo district.

Everything here is invented: names, ID numbers and phone numbers are drawn at
random (ID numbers carry a correct GB 11643 check character, phone numbers
real mobile prefixes) and must never be mistaken for real people. The same
``numpy.random.Generator`` state always gives the same people.

Shape of the population
-----------------------
Each household gets a composition type from its size and whether it is rural:
single person, couple, nuclear family (head, usually a spouse, children),
three generations upwards (head's parents live in), three generations
downwards (the head is a grandparent; in rural "skipped-generation" homes the
middle generation is away working), or a household with another relative.
Ages are then drawn so the family is coherent:

* head 22-85; a spouse within 8 years of the head (and 20+);
* children (子女) 0-40 and at least 18.1 years younger than the head and the
  spouse;
* parents (父母) at least 20.1 years older than the head;
* grandchildren (孙子女) at least 20.1 years younger than the oldest child
  present (or than an absent parent generation), so at least 38 years
  younger than the head;
* one-person households skew elderly, more so in rural areas.

Special-group flags follow rough Chinese rates: disability rises with age
(about 6 % overall), 低保 (``low_income``) covers about 3 % of households and
more rural than urban ones, 特困供养 (``extreme_poverty``) is a few per
thousand people, mostly elderly or disabled people living alone, veterans are
mostly men, and 社区矫正 (``community_correction``) is about 0.05 % of people.
``elderly_alone`` and ``left_behind_child`` are derived from ages and
household make-up, as defined in :func:`generate_people`.
"""
from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..idcard import make_ids

__all__ = [
    "HOME_AREA_CODE",
    "NEIGHBOUR_AREA_CODES",
    "OTHER_SHANDONG_AREA_CODES",
    "AREA_CODE_WEIGHTS",
    "RELATIONS",
    "FLAG_COLUMNS",
    "PHONE_PREFIXES",
    "generate_people",
]

#: The demo district: 枣庄市市中区.
HOME_AREA_CODE = "370402"
#: Other county-level units of Zaozhuang and the city-level code found on
#: older ID numbers.
NEIGHBOUR_AREA_CODES: dict[str, str] = {
    "370403": "薛城区",
    "370404": "峄城区",
    "370405": "台儿庄区",
    "370406": "山亭区",
    "370481": "滕州市",
    "370400": "枣庄市",
}
#: A few units elsewhere in Shandong, for people who moved in.
OTHER_SHANDONG_AREA_CODES: dict[str, str] = {
    "370102": "济南市历下区",
    "370811": "济宁市任城区",
    "370883": "邹城市",
    "371302": "临沂市兰山区",
}
#: Share of ID numbers issued under each area code.
AREA_CODE_WEIGHTS: dict[str, float] = {
    HOME_AREA_CODE: 0.80,
    "370403": 0.03, "370404": 0.03, "370405": 0.02, "370406": 0.03,
    "370481": 0.04, "370400": 0.02,
    "370102": 0.008, "370811": 0.008, "370883": 0.007, "371302": 0.007,
}

#: Relation to the household head, in the order of the internal role codes.
RELATIONS = ("户主", "配偶", "父母", "子女", "孙子女", "其他")
_HEAD, _SPOUSE, _PARENT, _CHILD, _GRAND, _OTHER = range(6)

#: Boolean special-group columns of ``residents``, in the order used by ``flags``.
FLAG_COLUMNS = ("disabled", "low_income", "elderly_alone", "extreme_poverty",
                "left_behind_child", "veteran", "community_correction")

#: Mainland mobile prefixes (China Mobile, Unicom, Telecom, Broadnet) with
#: relative weights: older 13x/15x/18x ranges hold most subscribers.
PHONE_PREFIXES: dict[int, float] = {
    **{p: 3.0 for p in range(130, 140)},
    **{p: 2.5 for p in (150, 151, 152, 153, 155, 156, 157, 158, 159)},
    **{p: 0.8 for p in (170, 171, 173, 175, 176, 177, 178)},
    **{p: 2.5 for p in range(180, 190)},
    **{p: 0.8 for p in (191, 193, 195, 196, 197, 198, 199)},
}

# Surnames with relative frequencies (per 10,000) for Shandong: the national
# ranking shifted towards northern surnames (王 张 李 刘 lead; 孙 徐 马 高 于
# 宋 孔 are frequent in Shandong) and away from southern ones.
_SURNAMES = (
    "王960 张890 李840 刘680 陈260 杨270 孙290 赵230 徐210 马180 高190 于160 "
    "郭140 宋130 朱120 胡100 周150 吴120 黄80 何70 林60 罗40 郑80 梁60 谢50 "
    "唐60 许80 韩110 冯90 邓40 曹110 彭50 曾25 肖50 田90 董100 袁60 潘40 蒋50 "
    "蔡40 余30 杜80 叶30 程70 苏60 魏80 吕70 丁70 任70 沈40 姚50 卢60 姜110 "
    "崔80 钟25 谭30 陆30 汪30 范60 金40 石60 廖15 贾60 夏40 韦10 付60 方40 "
    "白50 邹30 孟70 熊20 秦50 邱20 江30 尹40 薛50 闫50 段40 雷30 侯50 龙15 史50 "
    "陶30 黎10 贺30 顾30 毛30 郝40 龚15 邵40 万30 钱30 严30 覃5 武50 戴30 "
    "莫5 孔70 向10 汤20 褚30 颜30 牛40 葛40 满15 欧阳2 司马1 诸葛1 上官1"
)
_SURNAME_LIST = []
_SURNAME_WEIGHTS = []
for _tok in _SURNAMES.split():
    _i = next(i for i, ch in enumerate(_tok) if ch.isdigit())
    _SURNAME_LIST.append(_tok[:_i])
    _SURNAME_WEIGHTS.append(float(_tok[_i:]))
_SURNAME_ARR = np.array(_SURNAME_LIST)
_SURNAME_CUM = np.cumsum(_SURNAME_WEIGHTS) / np.sum(_SURNAME_WEIGHTS)
del _tok, _i

# Given-name characters by gender and birth cohort (before 1970, 1970-1994,
# 1995 on). Order: male old/mid/young, female old/mid/young.
_GIVEN_POOLS = (
    "国建庆华明军福贵德成文志学忠兴山林发海春荣清宝永长金玉生顺祥东平光民强伟刚勇胜利新红卫立",
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波亮峰健俊凯宁龙林海东建志晓帅旭永振兵洋阳雷亮刚",
    "浩宇轩睿泽昊然博子一梓铭晨俊皓宸豪逸辰凯阳嘉文天瑞锦诚熙霖煜航翔硕奕",
    "秀英兰桂芳玉珍凤梅华云荣淑琴花香莲爱翠素霞美敏菊娥",
    "丽静敏燕艳娟霞玲芳红娜丹萍莉倩婷雪慧晶颖洁琳蕾璐楠",
    "欣怡涵萱梓雨诗琪佳悦思梦可馨瑶妍彤依若语晨子雅琳欢钰",
)
_GIVEN_CHARS = np.array(list("".join(_GIVEN_POOLS)))
_POOL_LEN = np.array([len(p) for p in _GIVEN_POOLS])
_POOL_START = np.concatenate([[0], np.cumsum(_POOL_LEN)[:-1]])
# Share of one-character given names per cohort (old, mid, young).
_SINGLE_CHAR_SHARE = np.array([0.30, 0.35, 0.15])

# Household composition types.
_T_SINGLE, _T_COUPLE, _T_NUCLEAR, _T_UP, _T_DOWN, _T_OTHER = range(6)
# Type probabilities by [size class (2, 3+)][urban, rural].
_TYPE_P = np.array([
    [[0, .62, .25, .05, .03, .05], [0, .60, .20, .05, .10, .05]],
    [[0, 0, .62, .14, .16, .08], [0, 0, .52, .14, .26, .08]],
])
_TYPE_CUM = np.cumsum(_TYPE_P, axis=-1)
# Probability of a spouse in households of 3+ by type.
_SPOUSE_P = np.array([0, 1, .92, .90, .80, .70])
# Head-age triangular distributions: single young/old, couple young/old,
# nuclear, up, down, other.
_HEAD_AGE = np.array([
    (22, 28, 60), (60, 68, 86), (22, 27, 42), (48, 63, 86),
    (24, 38, 72), (25, 36, 58), (52, 62, 86), (22, 45, 86),
], dtype=float)

_DAYS_PER_YEAR = 365.2425
_MIN_DAYS = 0.003  # a person is at least a day old


def _as_day(as_of) -> np.datetime64:
    if isinstance(as_of, _dt.datetime):
        as_of = as_of.date()
    try:
        day = np.datetime64(as_of, "D")
    except (ValueError, TypeError):
        raise InvalidInputError(f"as_of must be a date, got {as_of!r}") from None
    if np.isnat(day):
        raise InvalidInputError("as_of must be a date, got NaT")
    return day


def _completed_years(birth: np.ndarray, day: np.datetime64) -> np.ndarray:
    """Age in completed years at ``day`` of ``datetime64[D]`` birth dates."""
    by = birth.astype("datetime64[Y]")
    bm = birth.astype("datetime64[M]")
    y = by.astype(np.int64) + 1970
    md = ((bm - by).astype(np.int64) + 1) * 100 + (birth - bm).astype(np.int64) + 1
    dy = day.astype("datetime64[Y]")
    dm = day.astype("datetime64[M]")
    t_md = ((dm - dy).astype(np.int64) + 1) * 100 + (day - dm).astype(np.int64) + 1
    return (dy.astype(np.int64) + 1970) - y - (md > t_md)


def _pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _validate(rng, household_sizes, rural):
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError("rng must be a numpy.random.Generator, e.g. np.random.default_rng(42)")
    sizes = np.asarray(household_sizes)
    if sizes.ndim != 1:
        raise InvalidInputError("household_sizes must be a 1-d array")
    if sizes.size and sizes.dtype.kind not in "iu":
        raise InvalidInputError("household_sizes must be integers")
    sizes = sizes.astype(np.int64)
    if sizes.size and (sizes.min() < 1 or sizes.max() > 30):
        raise InvalidInputError("every household size must lie in 1-30")
    rur = np.asarray(rural)
    if rur.shape != sizes.shape:
        raise InvalidInputError(
            f"rural has {rur.size} values for {sizes.size} households; give one per household")
    if rur.dtype != bool:
        if rur.size and (rur.dtype.kind not in "iu" or not np.isin(rur, (0, 1)).all()):
            raise InvalidInputError("rural must be booleans")
        rur = rur.astype(bool)
    return sizes, rur


def generate_people(rng: np.random.Generator, household_sizes: np.ndarray,
                    rural: np.ndarray, as_of: _dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic households and residents, fully vectorised.

    ``household_sizes`` (int, 1-30) and ``rural`` (bool) have one value per
    household; ``as_of`` is the day ages refer to. Returns
    ``(households, residents)``:

    * ``households``, indexed 0..n-1 in input order: ``head_name``, ``size``,
      ``flags`` (comma-joined names of the :data:`FLAG_COLUMNS` true for any
      member, '' if none), ``elderly_alone``, ``low_income``.
    * ``residents``, grouped by household with the head first:
      ``household`` (row of ``households``), ``name``, ``gender`` ('M'/'F'),
      ``birth_date`` (midnight timestamps; pandas stores dates at second
      resolution), ``id_number``, ``phone`` ('' under 14), ``relation``
      (户主 配偶 父母 子女 孙子女 其他) and the boolean :data:`FLAG_COLUMNS`:
      ``elderly_alone`` is aged 60+ in a one-person household;
      ``left_behind_child`` is under 16 in a rural household with no member
      aged 18-59; ``low_income`` (低保) is set for all members of a household.

    ID numbers are unique within one call.
    """
    sizes, rural = _validate(rng, household_sizes, rural)
    day = _as_day(as_of)
    H = sizes.size
    N = int(sizes.sum())

    # ------------------------------------------------------- composition
    hu = rng.random((12, H))
    size_class = (sizes >= 3).astype(np.int64)
    rur_i = rural.astype(np.int64)
    cum = _TYPE_CUM[size_class, rur_i]                       # (H, 6)
    htype = (hu[0][:, None] >= cum).sum(axis=1)
    htype = np.where(sizes == 1, _T_SINGLE, np.minimum(htype, _T_OTHER))

    has_sp = np.where(htype == _T_COUPLE, 1,
                      np.where(sizes >= 3, (hu[1] < _SPOUSE_P[htype]).astype(np.int64), 0))
    has_sp = np.where(htype == _T_SINGLE, 0, has_sp)
    rest = sizes - 1 - has_sp
    n_par = np.where(htype == _T_UP, np.minimum(rest, 1 + (hu[2] < 0.45)), 0)
    skipped = hu[3] < np.where(rural, 0.35, 0.20)
    n_mid = np.where(hu[2] < 0.7, 1, 2)                          # children kept in "down" homes
    n_grand = np.where(htype == _T_DOWN,
                       np.where(skipped, rest, np.maximum(1, rest - n_mid)), 0)
    n_oth = np.where(htype == _T_OTHER, 1, 0)
    n_child = rest - n_par - n_grand - n_oth

    # ------------------------------------------------- household-level ages
    old_single = hu[4] < np.where(rural, 0.45, 0.22)
    old_couple = hu[4] < 0.55
    row = np.select(
        [htype == _T_SINGLE, htype == _T_COUPLE, htype == _T_NUCLEAR, htype == _T_UP,
         htype == _T_DOWN],
        [np.where(old_single, 1, 0), np.where(old_couple, 3, 2), 4, 5, 6], 7)
    left, mode, right = _HEAD_AGE[row].T
    head_age = np.clip(rng.triangular(left, mode, right) if H else np.zeros(0), 22.02, 85.98)

    p_head_f = np.where(has_sp == 1, 0.22,
                        np.where(htype == _T_SINGLE, np.where(old_single, 0.62, 0.45), 0.55))
    head_f = hu[5] < p_head_f
    sp_shift = np.where(head_f, 2.0, -2.0) + 2.5 * rng.standard_normal(H)
    spouse_age = np.clip(head_age + np.clip(sp_shift, -8, 8), 20.02, 95.0)
    ref_age = np.where(has_sp == 1, np.minimum(head_age, spouse_age), head_age)
    parent_base = head_age + 21.0 + 15.0 * rng.beta(2.0, 2.5, H)
    first_parent_f = hu[6] < 0.6

    # --------------------------------------------------------- members
    starts = np.cumsum(sizes) - sizes
    hh = np.repeat(np.arange(H), sizes)
    pos = np.arange(N) - starts[hh]
    b_sp = 1 + has_sp
    b_par = b_sp + n_par
    b_child = b_par + n_child
    b_grand = b_child + n_grand
    role = ((pos >= 1).astype(np.int64) + (pos >= b_sp[hh]) + (pos >= b_par[hh])
            + (pos >= b_child[hh]) + (pos >= b_grand[hh]))
    mu = rng.random((12, N))
    mn = rng.standard_normal((2, N))

    h_age, h_ref = head_age[hh], ref_age[hh]
    age = h_age.copy()
    is_sp, is_par, is_ch, is_gr, is_ot = (role == r for r in (_SPOUSE, _PARENT, _CHILD, _GRAND, _OTHER))
    age[is_sp] = spouse_age[hh][is_sp]
    p_age = np.minimum(np.maximum(parent_base[hh] + 2.5 * mn[0], h_age + 20.1), 99.5)
    age[is_par] = p_age[is_par]

    down = (htype == _T_DOWN)[hh]
    gap = 20.5 + 15.0 * mu[0] * mu[1] ** 0.3             # 20.5-35.5 years, mostly late 20s
    c_age = h_ref - gap
    c_age = np.where(down, np.maximum(c_age, 20.5), c_age)
    young = np.maximum(h_ref - 18.1, 2 * _MIN_DAYS)
    c_age = np.where(c_age < _MIN_DAYS, _MIN_DAYS + mu[2] * (young - _MIN_DAYS), c_age)
    # Children past 40 would have left: redraw them among the late twenties to 40s.
    c_age = np.where(c_age > 40.9, np.minimum(27.0 + 13.9 * mu[2], h_ref - 18.1), c_age)
    c_age = np.maximum(c_age, _MIN_DAYS)
    age[is_ch] = c_age[is_ch]

    # Parent generation of grandchildren: the oldest child present, else an
    # absent one drawn like a child of the head.
    child_only = np.where(is_ch, age, -1.0)
    oldest_child = np.maximum.reduceat(child_only, starts) if H else np.zeros(0)
    virtual = np.clip(ref_age - 21.0 - 14.0 * hu[7], 20.5, 45.0)
    mid_gen = np.where(oldest_child >= 0, oldest_child, virtual)
    g_upper = np.minimum(mid_gen - 20.1, 25.0)[hh]
    g_age = _MIN_DAYS + mu[3] * np.maximum(g_upper - _MIN_DAYS, 0.0)
    age[is_gr] = g_age[is_gr]

    o_age = h_age + 12.0 * mn[1]
    o_age = np.where((o_age < 0.5) | (o_age > 94.0), 1.0 + 93.0 * mu[2], o_age)
    age[is_ot] = o_age[is_ot]

    birth = day - np.round(age * _DAYS_PER_YEAR).astype(np.int64).astype("timedelta64[D]")
    years = _completed_years(birth, day)

    # ------------------------------------------------------------ gender
    female = mu[4] < 0.48
    female[role == _HEAD] = head_f
    female[is_sp] = ~head_f[hh][is_sp]
    second_parent = is_par & (pos == b_sp[hh] + 1)
    par_f = first_parent_f[hh] ^ second_parent
    female[is_par] = par_f[is_par]

    # ------------------------------------------------------------- names
    s_draw = _pick(_SURNAME_CUM, mu[5])                  # each person's own draw
    head_s = s_draw[starts] if H else np.zeros(0, dtype=np.int64)
    spouse_s = np.where(has_sp == 1, s_draw[np.minimum(starts + 1, max(N - 1, 0))], -1) if H \
        else np.zeros(0, dtype=np.int64)
    absent_father_s = _pick(_SURNAME_CUM, hu[8])
    family_s = np.where(~head_f, head_s, np.where(spouse_s >= 0, spouse_s, absent_father_s))
    surname = s_draw.copy()
    hs, fs = head_s[hh], family_s[hh]
    surname = np.where(is_ch & (mu[6] < 0.92), fs, surname)
    surname = np.where(is_gr & (mu[6] < 0.70), fs, surname)
    surname = np.where(is_par & ~female & (mu[6] < 0.95), hs, surname)
    surname = np.where(is_ot & (mu[6] < 0.40), hs, surname)

    birth_year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    cohort = np.where(birth_year < 1970, 0, np.where(birth_year < 1995, 1, 2))
    pool = female * 3 + cohort
    c1 = _POOL_START[pool] + (mu[7] * _POOL_LEN[pool]).astype(np.int64)
    c2 = _POOL_START[pool] + (mu[8] * _POOL_LEN[pool]).astype(np.int64)
    two = mu[9] >= _SINGLE_CHAR_SHARE[cohort]
    given = np.strings.add(_GIVEN_CHARS[c1], np.where(two, _GIVEN_CHARS[c2], ""))
    name = np.strings.add(_SURNAME_ARR[surname], given)

    # ------------------------------------------------------------ phones
    prefixes = np.array(list(PHONE_PREFIXES), dtype=np.int64)
    p_cum = np.cumsum(list(PHONE_PREFIXES.values()))
    p_cum = p_cum / p_cum[-1]
    number = prefixes[_pick(p_cum, mu[10])] * 100_000_000 + rng.integers(0, 100_000_000, N)
    phone = np.where(years >= 14, number.astype(str), "")

    # --------------------------------------------------------- ID numbers
    codes = np.array(list(AREA_CODE_WEIGHTS))
    a_cum = np.cumsum(list(AREA_CODE_WEIGHTS.values()))
    a_cum = a_cum / a_cum[-1]
    area = _pick(a_cum, mu[11])
    inherit = (is_ch | is_gr) & (mn[0] > -0.5)               # ~70 % share the head's area
    area = np.where(inherit, area[starts][hh] if H else area, area)
    seq = _unique_sequences(rng, area, birth, female)
    id_number = make_ids(codes[area], birth, seq, female) if N else np.zeros(0, dtype="<U18")

    # ------------------------------------------------------------- flags
    # Disability prevalence by age band (China 2006 sample survey shape).
    dis_p = np.select([years < 15, years < 45, years < 60, years < 75],
                      [0.012, 0.03, 0.06, 0.13], 0.25) * np.where(rural[hh], 1.15, 1.0)
    fu = rng.random((5, N))
    disabled = fu[0] < dis_p
    alone = (sizes == 1)[hh]
    elderly_alone = alone & (years >= 60)
    adult_present = np.logical_or.reduceat((years >= 18) & (years <= 59), starts) if H \
        else np.zeros(0, dtype=bool)
    no_working_age = ~adult_present[hh]
    left_behind = (years < 16) & rural[hh] & no_working_age

    ext_p = np.where(alone & ((years >= 60) | disabled), np.where(rural[hh], 0.10, 0.05), 0.0)
    ext_p = np.where((years < 16) & no_working_age, 0.03, ext_p)
    extreme = fu[1] < ext_p

    veteran = fu[2] < np.where(female, np.where((years >= 18) & (years <= 60), 0.004, 0.0),
                               np.where((years >= 20) & (years <= 85), 0.075, 0.0))
    community_correction = fu[3] < np.where((years >= 18) & (years <= 65),
                                            np.where(female, 0.0002, 0.0014), 0.0)

    def any_in(x):
        return np.logical_or.reduceat(x, starts) if H else np.zeros(0, dtype=bool)

    hh_extreme = any_in(extreme)
    hh_disabled = any_in(disabled)
    hh_elderly_alone = any_in(elderly_alone)
    low_p = np.where(rural, 0.045, 0.018) * np.where(hh_disabled, 2.0, 1.0) \
        * np.where(hh_elderly_alone, 1.5, 1.0)
    hh_low = (hu[9] < np.minimum(low_p, 0.5)) & ~hh_extreme       # 特困 and 低保 exclude each other
    low_income = hh_low[hh]

    member_flags = (disabled, low_income, elderly_alone, extreme, left_behind, veteran,
                    community_correction)
    bits = np.zeros(H, dtype=np.int64)
    for k, f in enumerate(member_flags):
        bits |= any_in(f).astype(np.int64) << k
    table = np.array([",".join(n for k, n in enumerate(FLAG_COLUMNS) if code >> k & 1)
                      for code in range(1 << len(FLAG_COLUMNS))])
    flags = table[bits]

    # ------------------------------------------------------------- frames
    households = pd.DataFrame({
        "head_name": name[starts] if H else np.zeros(0, dtype=str),
        "size": sizes,
        "flags": flags,
        "elderly_alone": hh_elderly_alone,
        "low_income": hh_low,
    }, index=pd.RangeIndex(H, name="household"))
    residents = pd.DataFrame({
        "household": hh,
        "name": name,
        "gender": np.where(female, "F", "M"),
        "birth_date": birth,
        "id_number": id_number,
        "phone": phone,
        "relation": np.array(RELATIONS)[role],
        "disabled": disabled,
        "low_income": low_income,
        "elderly_alone": elderly_alone,
        "extreme_poverty": extreme,
        "left_behind_child": left_behind,
        "veteran": veteran,
        "community_correction": community_correction,
    })
    return households, residents


def _unique_sequences(rng: np.random.Generator, area: np.ndarray, birth: np.ndarray,
                      female: np.ndarray) -> np.ndarray:
    """3-digit order codes, unique per (area, birth date, gender).

    People sharing area, birthday and gender get consecutive order numbers
    from a random start, so ID numbers never collide (up to 500 such people).
    """
    n = area.size
    base = rng.integers(0, 500, n)
    if n == 0:
        return base
    d = birth.astype(np.int64)
    key = ((area.astype(np.int64) * 2 + female) << 32) + (d - d.min())
    order = np.argsort(key, kind="stable")
    sk = key[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = sk[1:] != sk[:-1]
    group_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    rank = np.arange(n) - group_start
    k_sorted = (base[order][group_start] + rank) % 500
    k = np.empty(n, dtype=np.int64)
    k[order] = k_sorted
    return 2 * k + (~female).astype(np.int64)
