"""Demo patients with Chinese names, hospital-issued IDs and fake resident ID numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# Province code 99 does not exist, so these numbers can never be a real person's.
_FAKE_REGION = "990101"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

NATIONAL_ID_ISSUER = "CN-RESIDENT-ID"
"""IssuerOfPatientID used for the resident ID number in OtherPatientIDsSequence."""

DEMO_ISSUERS: dict[str, str] = {
    "dongshan-clinic": "东山镇卫生院",
    "xishan-clinic": "西山乡卫生院",
    "county-hospital": "青溪县人民医院",
    "city-centre": "市中心医院区域影像中心",
}
"""Codes of the institutions that issued the demo patients' IDs, with their names."""


@dataclass(frozen=True)
class PatientSpec:
    """A patient as one hospital knows them: PatientID is unique only inside `issuer`."""

    family_name: str
    given_name: str
    sex: str  # DICOM PatientSex: "M", "F" or "O"
    birth_date: date
    patient_id: str
    issuer: str
    national_id: str

    @property
    def dicom_name(self) -> str:
        """Return the Person Name value, family^given (PS3.5 6.2.1)."""
        return f"{self.family_name}^{self.given_name}"

    @property
    def full_name(self) -> str:
        """Return the name as written in Chinese, family name first without a separator."""
        return self.family_name + self.given_name

    def age_on(self, day: date) -> int:
        """Return the age in whole years on `day`."""
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - int(before_birthday)


def national_id_check_digit(first17: str) -> str:
    """Return the GB 11643 (ISO 7064 MOD 11-2) check character for 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("a resident ID number has 17 digits before its check character")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def fake_national_id(birth_date: date, sex: str, serial: int) -> str:
    """Return a well-formed 18-character resident ID number in a non-existent region."""
    if not 0 <= serial < 450:
        raise ValueError("serial must be in [0, 450)")
    # The 17th digit is odd for men and even for women.
    order = 100 + 2 * serial + (1 if sex == "M" else 0)
    first17 = f"{_FAKE_REGION}{birth_date:%Y%m%d}{order:03d}"
    return first17 + national_id_check_digit(first17)


# (family, given, sex, birth date, issuer, PatientID). 张三 appears twice: the same person
# registered at a clinic and at the county hospital (same resident ID, two PatientIDs);
# 刘芳 shares PatientID 100023 with 张三 at another clinic, yet is someone else.
_DEMO_ROWS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("张", "三", "M", "1968-03-12", "dongshan-clinic", "100023"),
    ("张", "三", "M", "1968-03-12", "county-hospital", "ZY20240311"),
    ("李", "秀英", "F", "1955-11-02", "dongshan-clinic", "100024"),
    ("王", "建国", "M", "1949-10-01", "dongshan-clinic", "100031"),
    ("刘", "芳", "F", "1990-06-18", "xishan-clinic", "100023"),
    ("陈", "志强", "M", "1975-01-27", "xishan-clinic", "100057"),
    ("杨", "丽娟", "F", "1983-08-09", "xishan-clinic", "100058"),
    ("赵", "军", "M", "1961-12-30", "county-hospital", "ZY20240415"),
    ("黄", "桂兰", "F", "1944-04-05", "county-hospital", "ZY20240502"),
    ("周", "明", "M", "2012-09-14", "county-hospital", "ZY20240617"),
    ("吴", "玉梅", "F", "1958-02-21", "county-hospital", "ZY20240720"),
    ("徐", "海涛", "M", "1979-07-07", "city-centre", "M0012345"),
    ("孙", "淑珍", "F", "1938-05-16", "city-centre", "M0012346"),
    ("马", "国华", "M", "1952-10-10", "city-centre", "M0012377"),
    ("朱", "小红", "F", "1995-12-03", "dongshan-clinic", "100102"),
    ("胡", "德胜", "M", "1966-03-29", "xishan-clinic", "100133"),
    ("郭", "婷", "F", "2001-01-15", "county-hospital", "ZY20240805"),
    ("欧阳", "娜", "F", "1987-09-22", "city-centre", "M0012401"),
    # 䶮 (U+4DAE) lies outside GBK: only GB18030's four-byte form can carry it.
    ("龚", "䶮", "M", "1972-04-30", "dongshan-clinic", "100150"),
    ("司马", "振华", "M", "1947-06-11", "county-hospital", "ZY20240901"),
)


def demo_patients() -> list[PatientSpec]:
    """Return the demo patients; the same person always gets the same resident ID."""
    serials: dict[tuple[str, str, str], int] = {}
    patients = []
    for family, given, sex, born, issuer, patient_id in _DEMO_ROWS:
        serial = serials.setdefault((family, given, born), len(serials))
        birth_date = date.fromisoformat(born)
        patients.append(
            PatientSpec(
                family_name=family,
                given_name=given,
                sex=sex,
                birth_date=birth_date,
                patient_id=patient_id,
                issuer=issuer,
                national_id=fake_national_id(birth_date, sex, serial),
            )
        )
    return patients
