"""Write routing/data/units.json: the 448 linked units (联动单位) of the programme.

The units named in the source (DOMAIN.md) keep their codes; the remainder is the
realistic rest of a three-tier directory — further city departments, each county's
party and government departments, and its townships — so that routing, rules and
supervision's ladder are exercised at the source's scale. Run it from the service
folder: ``python tools/generate_units.py``; the output is committed as data.
"""

from __future__ import annotations

import json
from pathlib import Path

TOTAL = 448

NAMED_CITY = [
    ("city-org", "市委组织部"),
    ("city-party-office", "市委办公室"),
    ("city-gov-office", "市政府办公室"),
    ("city-publicity", "市委宣传部"),
    ("city-discipline", "市纪委（监察局）"),
    ("city-npc-office", "市人大常委会办公室"),
    ("city-economy", "市经委"),
    ("city-construction", "市建委"),
    ("city-police", "市公安局"),
    ("city-procuratorate", "市人民检察院"),
    ("city-court", "市中级法院"),
    ("city-land", "市土地管理局"),
    ("city-culture", "市文化局"),
    ("city-youth-league", "团市委"),
]
MORE_CITY = [
    ("city-letters", "市信访局"),
    ("city-united-front", "市委统战部"),
    ("city-politics-law", "市委政法委"),
    ("city-retired-cadres", "市委老干部局"),
    ("city-cppcc-office", "市政协办公室"),
    ("city-civil-affairs", "市民政局"),
    ("city-labour", "市劳动局"),
    ("city-personnel", "市人事局"),
    ("city-health", "市卫生局"),
    ("city-education", "市教委"),
    ("city-finance", "市财政局"),
    ("city-transport", "市交通局"),
    ("city-water", "市水利局"),
    ("city-agriculture", "市农业局"),
    ("city-planning", "市规划局"),
    ("city-environment", "市环保局"),
    ("city-justice", "市司法局"),
    ("city-audit", "市审计局"),
    ("city-tax", "市税务局"),
    ("city-industry-commerce", "市工商局"),
    ("city-price", "市物价局"),
    ("city-housing", "市房地产管理局"),
    ("city-forestry", "市林业局"),
    ("city-fishery", "市海洋与渔业局"),
    ("city-science", "市科委"),
    ("city-sports", "市体委"),
    ("city-tourism", "市旅游局"),
    ("city-grain", "市粮食局"),
    ("city-family-planning", "市计划生育委员会"),
    ("city-women", "市妇联"),
    ("city-trade-unions", "市总工会"),
    ("city-statistics", "市统计局"),
    ("city-power", "市电业局"),
    ("city-telecom", "市电信局"),
    ("city-urban-management", "市城市管理局"),
]
COUNTIES = [
    ("xc", "芗城区"),
    ("lw", "龙文区"),
    ("lh", "龙海市"),
    ("zp", "漳浦县"),
    ("yx", "云霄县"),
    ("ds", "东山县"),
    ("za", "诏安县"),
    ("ph", "平和县"),
    ("nj", "南靖县"),
    ("ha", "华安县"),
    ("ct", "长泰县"),
]
# (code suffix, name suffix, party organ?): a party organ is named "<county>委<suffix>".
DEPARTMENTS = [
    ("org", "组织部", True),
    ("party-office", "办公室", True),
    ("publicity", "宣传部", True),
    ("discipline", "纪委", False),
    ("gov-office", "政府办公室", False),
    ("npc-office", "人大常委会办公室", False),
    ("police", "公安局", False),
    ("procuratorate", "人民检察院", False),
    ("court", "人民法院", False),
    ("land", "土地管理局", False),
    ("construction", "建设局", False),
    ("civil-affairs", "民政局", False),
    ("labour", "劳动局", False),
    ("health", "卫生局", False),
    ("education", "教育局", False),
    ("finance", "财政局", False),
    ("transport", "交通局", False),
    ("water", "水利局", False),
    ("agriculture", "农业局", False),
    ("letters", "信访局", False),
    ("justice", "司法局", False),
    ("planning", "规划局", False),
    ("family-planning", "计划生育局", False),
    ("forestry", "林业局", False),
    ("culture", "文化局", False),
]
# Urban districts and the island county keep no forestry bureau; 长泰 merges culture.
ABSENT = {("xc", "forestry"), ("lw", "forestry"), ("ds", "forestry"), ("ct", "culture")}
TOWNSHIPS = {
    "xc": "zhishan 芝山镇, shiting 石亭镇, punan 浦南镇, tianbao 天宝镇, xiqiao 西桥街道, "
    "tongbei 通北街道, xinqiao 新桥街道, dongputou 东铺头街道",
    "lw": "buwen 步文镇, guokeng 郭坑镇, chaoyang 朝阳镇, lantian 蓝田镇",
    "lh": "shima 石码镇, haicheng 海澄镇, jiaomei 角美镇, baishui 白水镇, fugong 浮宫镇, "
    "gangwei 港尾镇, longjiao 隆教乡, dongyuan 东园镇, zini 紫泥镇, bangshan 榜山镇, "
    "jiuhu 九湖镇, yancuo 颜厝镇, chengxi 程溪镇, dongsi 东泗乡",
    "zp": "suian 绥安镇, jiuzhen 旧镇镇, fotan 佛昙镇, chihu 赤湖镇, duxun 杜浔镇, xiamei 霞美镇, "
    "guanxun 官浔镇, shiliu 石榴镇, pantuo 盘陀镇, changqiao 长桥镇, qianting 前亭镇, "
    "maping 马坪镇, shentu 深土镇, liuao 六鳌镇, shaxi 沙西镇, gulei 古雷镇, "
    "dananban 大南坂镇, nanpu 南浦乡, chiling 赤岭乡, huxi 湖西乡",
    "yx": "yunling 云陵镇, chendai 陈岱镇, dongxia 东厦镇, pumei 莆美镇, lieyu 列屿镇, "
    "huotian 火田镇, mapu 马铺乡, xiahe 下河乡, heping 和平乡",
    "ds": "xipu 西埔镇, tongling 铜陵镇, kangmei 康美镇, xingchen 杏陈镇, chencheng 陈城镇, "
    "qianlou 前楼镇, zhangtang 樟塘镇",
    "za": "nanzhao 南诏镇, sidu 四都镇, meiling 梅岭镇, qiaodong 桥东镇, shenqiao 深桥镇, "
    "taiping 太平镇, xiage 霞葛镇, guanbei 官陂镇, xiuzhuan 秀篆镇, jinxing 金星乡, "
    "baiyang 白洋乡, jianshe 建设乡, hongxing 红星乡",
    "ph": "xiaoxi 小溪镇, shange 山格镇, wenfeng 文峰镇, nansheng 南胜镇, banzai 坂仔镇, "
    "anhou 安厚镇, daxi 大溪镇, xiazhai 霞寨镇, jiufeng 九峰镇, luxi 芦溪镇, wuzhai 五寨乡, "
    "guoqiang 国强乡, qiling 崎岭乡, changle 长乐乡, xiufeng 秀峰乡",
    "nj": "shancheng 山城镇, fengtian 丰田镇, jingcheng 靖城镇, longshan 龙山镇, jinshan 金山镇, "
    "hexi 和溪镇, kuiyang 奎洋镇, meilin 梅林镇, shuyang 书洋镇, chuanchang 船场镇, "
    "nankeng 南坑镇",
    "ha": "huafeng 华丰镇, fengshan 丰山镇, shajian 沙建镇, xinxu 新圩镇, gaoan 高安镇, "
    "xiandu 仙都镇, gaoche 高车乡, makeng 马坑乡, hulin 湖林乡",
    "ct": "wuan 武安镇, yanxi 岩溪镇, chenxiang 陈巷镇, banli 坂里乡, fangyang 枋洋镇, "
    "mayangxi 马洋溪生态旅游区",
}


def unit(code, name, level, parent, area):
    return {
        "code": code,
        "name": name,
        "level": level,
        "parent": parent,
        "area": area,
        "leader": None,
        "active": True,
    }


def generate() -> list[dict]:
    units = [unit("city", "漳州市", "city", None, "city")]
    units += [unit(code, name, "city", "city", "city") for code, name in NAMED_CITY + MORE_CITY]
    units += [unit(code, name, "county", "city", code) for code, name in COUNTIES]
    for county, county_name in COUNTIES:
        for suffix, name, party in DEPARTMENTS:
            if (county, suffix) in ABSENT:
                continue
            full = f"{county_name}委{name}" if party else f"{county_name}{name}"
            units.append(unit(f"{county}-{suffix}", full, "county", county, county))
    for county, _ in COUNTIES:
        for entry in TOWNSHIPS[county].split(", "):
            slug, name = entry.split(" ")
            units.append(unit(f"{county}-{slug}", name, "township", county, county))
    codes = [u["code"] for u in units]
    assert len(set(codes)) == len(codes), "unit codes repeat"
    assert len(units) == TOTAL, f"{len(units)} units, not {TOTAL}"
    return units


def main() -> None:
    target = Path(__file__).resolve().parent.parent / "routing" / "data" / "units.json"
    lines = ",\n".join("    " + json.dumps(u, ensure_ascii=False) for u in generate())
    comment = (
        "The 448 linked units (联动单位): the units named in the source (DOMAIN.md) and a "
        "generated remainder (tools/generate_units.py). Loaded by `nighttalk routing seed` "
        "(an upsert: running it twice changes nothing). area = the county or district a "
        'unit sits in, or "city".'
    )
    target.write_text(
        "{\n"
        f'  "_comment": {json.dumps(comment, ensure_ascii=False)},\n'
        f'  "units": [\n{lines}\n  ]\n}}\n',
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
