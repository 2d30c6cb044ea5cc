"""The starting catalogue of categories and channels, as the source names them."""

CATEGORIES = {
    "demolition_compensation": "拆迁补偿",
    "village_redevelopment": "新村改造、规划",
    "wage_arrears": "拖欠工资",
    "medical_reimbursement": "医药费报销",
    "retired_cadres": "老干部待遇",
    "land": "土地管理",
    "policing": "公安、执法",
    "judicial": "法院、检察院",
    "enterprise_workers": "企业职工",
    "cadre_conduct": "干部作风、廉政",
}

# night_talk: the monthly night (夜谈); daily: complaint centres (勤政申诉中心);
# roving: officials receiving in villages (巡回接访, 下访); letter, phone, online.
CHANNELS = ("night_talk", "daily", "roving", "letter", "phone", "online")

DISPOSITIONS = ("resolved_on_spot", "sign_over", "route")
