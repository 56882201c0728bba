"""The report templates every hub starts with: the normal text a reader edits, in Chinese.

These are data, not translations: a region's radiologists edit them in the
admin. ``seed_report_templates`` adds the missing ones and never overwrites an
edited template; the data migration ``0007_reading_templates`` calls it.
"""

from __future__ import annotations

from typing import Any

# (modality, body part, name, findings, impression). Modality and body part use
# DICOM's words (Modality (0008,0060), Body Part Examined (0018,0015)).
REPORT_TEMPLATES: list[tuple[str, str, str, str, str]] = [
    (
        "CT",
        "CHEST",
        "胸部CT平扫（正常）",
        "胸廓对称，气管居中。双肺纹理清晰，走行自然，双肺野内未见明确实质性病灶及异常密度影。"
        "各叶段支气管通畅，未见狭窄或截断。双侧肺门不大，纵隔内未见明显肿大淋巴结。"
        "心脏及大血管形态、大小未见异常。双侧胸膜未见增厚，双侧胸腔未见积液。"
        "扫描范围内骨质结构未见明显异常。",
        "胸部CT平扫未见明显异常。",
    ),
    (
        "CT",
        "CHEST",
        "胸部CT平扫（肺结节）",
        "胸廓对称，气管居中。右肺上叶尖段见一实性结节，边界清楚，大小约 __ mm × __ mm，"
        "CT值约 __ HU，未见明显分叶及毛刺，邻近胸膜未见牵拉。余双肺野未见明确实变影。"
        "各叶段支气管通畅。双侧肺门不大，纵隔内未见明显肿大淋巴结。心影不大。双侧胸腔未见积液。",
        "右肺上叶实性结节，建议 __ 个月后低剂量CT复查（参照肺结节诊治指南）。",
    ),
    (
        "DX",
        "CHEST",
        "胸部正位片（正常）",
        "胸廓对称，气管居中。双肺纹理清晰，双肺野内未见明确实变及结节影。双侧肺门影不大。"
        "心影大小、形态未见异常。双侧膈面光整，肋膈角锐利。所见骨骼未见明显异常。",
        "心肺膈未见明显异常。",
    ),
    (
        "DX",
        "CHEST",
        "胸部正位片（肺炎）",
        "胸廓对称，气管居中。右下肺野见斑片状密度增高影，边缘模糊，其内隐约见支气管充气征。"
        "余肺野清晰。双侧肺门影不大。心影大小、形态未见异常。右侧肋膈角稍钝。",
        "右下肺炎症，请结合临床，治疗后复查。",
    ),
    (
        "US",
        "ABDOMEN",
        "腹部超声（正常）",
        "肝脏形态大小正常，包膜光滑，实质回声均匀，肝内管道结构清晰，门静脉主干内径正常。"
        "胆囊大小正常，壁光滑，腔内未见异常回声，胆总管不扩张。"
        "胰腺形态大小正常，回声均匀，主胰管不扩张。脾脏形态大小正常，实质回声均匀。"
        "双肾形态大小正常，皮髓质分界清，集合系统未见分离，未见结石声影。",
        "肝、胆、胰、脾、双肾超声检查未见明显异常。",
    ),
    (
        "US",
        "ABDOMEN",
        "腹部超声（胆囊结石）",
        "肝脏形态大小正常，实质回声均匀。胆囊大小正常，壁稍毛糙，腔内见一强回声团，"
        "大小约 __ mm，后伴声影，随体位改变而移动。胆总管不扩张。胰腺、脾脏、双肾未见明显异常。",
        "胆囊结石。",
    ),
    (
        "MR",
        "HEAD",
        "头颅MR平扫（正常）",
        "脑实质内未见明显异常信号影，灰白质分界清楚。脑室系统大小、形态正常，"
        "脑沟、脑裂、脑池未见增宽，中线结构居中。小脑及脑干未见异常信号。DWI未见弥散受限高信号。"
        "垂体形态大小未见异常。双侧乳突及副鼻窦未见明显异常信号。",
        "头颅MR平扫未见明显异常。",
    ),
    (
        "MR",
        "HEAD",
        "头颅MR平扫（腔隙性脑梗死）",
        "双侧基底节区见多发斑点状长T1长T2信号影，FLAIR呈高信号，DWI未见弥散受限，"
        "最大者直径约 __ mm。双侧侧脑室旁白质见斑片状FLAIR高信号。脑室系统未见扩大，中线结构居中。",
        "双侧基底节区多发腔隙性脑梗死（陈旧性）；脑白质变性。",
    ),
    (
        "ECG",
        "HEART",
        "常规十二导联心电图（正常）",
        "窦性心律，心率 __ 次/分。P波形态正常，PR间期 __ s，QRS时限 __ s，QT/QTc __/__ s。"
        "电轴不偏。各导联ST段未见明显偏移，T波形态正常。",
        "窦性心律；正常心电图。",
    ),
    (
        "ECG",
        "HEART",
        "常规十二导联心电图（急性ST段抬高）",
        "窦性心律，心率 __ 次/分。II、III、aVF导联ST段弓背向上抬高约 __ mV，"
        "I、aVL导联ST段压低。可见病理性Q波：__。",
        "急性下壁ST段抬高型心肌梗死可能，危急值，请立即处理。",
    ),
]

# Names a modality goes by in the files that mean one template set (CR and DR are DX).
MODALITY_ALIASES = {"CR": "DX", "DR": "DX"}


def template_modality(modality: str) -> str:
    """Return the modality whose templates fit ``modality``."""
    key = modality.strip().upper()
    return MODALITY_ALIASES.get(key, key)


def seed_report_templates(model: Any = None) -> int:
    """Add the templates above that are missing; return how many were added.

    ``model`` lets a data migration pass its historical model.
    """
    if model is None:
        from studies.models import ReportTemplate

        model = ReportTemplate
    added = 0
    for modality, body_part, name, findings, impression in REPORT_TEMPLATES:
        _obj, created = model.objects.get_or_create(
            modality=modality,
            body_part=body_part,
            name=name,
            defaults={"findings": findings, "impression": impression},
        )
        added += int(created)
    return added
